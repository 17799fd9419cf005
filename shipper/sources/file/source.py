"""The ``file`` input: tail JSON-lines files through rotation, truncation and restarts.

Each open file is a ``TailedFile``, keyed by (device, inode) while open and by a *stream id*
in the registry. Positions are byte offsets just after a complete line. The registry entry
of a stream holds its identity (dev, ino, fingerprint), last path and acknowledged offset.

Rotation by rename: the renamed file stays open and is read to its end; the new file at the
path is a new stream read from offset 0. Truncation (``copytruncate``): size below our read
offset, or the first bytes changed, starts a new stream at offset 0 on the same file. Lines
written between logrotate's copy and its truncate are lost whatever the shipper does; the
window is shortest when the file is read promptly (inotify wake-ups, see ``Discovery``).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from shipper.clock import SYSTEM, Clock
from shipper.config import FileInputConfig
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.sources import Chunk, Lag
from shipper.sources.file.discovery import Discovery, watch_root
from shipper.sources.file.fingerprint import Fingerprint
from shipper.sources.lines import Frame, LineSplitter
from shipper.timespec import parse_duration
from shipper.wake import Wake

log = logging.getLogger(__name__)
READ_SIZE = 1 << 19  # ~600 records: a block rarely needs cutting to the poll budget (half a batch)
WARN_EVERY = 300.0  # seconds between repeats of one warning ("no file matches", "cannot open")


@dataclass(eq=False)
class TailedFile:
    stream: str
    path: str
    fd: int
    dev: int
    ino: int
    splitter: LineSplitter
    fingerprint: Fingerprint
    read_pos: int  # next byte to read (may be inside an incomplete line)
    last_data: float  # when data was last read (the source's clock)
    at_path: bool = True  # still reachable at a path matching the globs
    deleted_at: float | None = None
    backlog: list[Frame] = field(default_factory=list)  # framed but over the poll budget
    pending: bytes = b""  # complete lines read in block mode but over the poll budget
    pending_start: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return self.dev, self.ino


def _last_line_end(fd: int, size: int) -> int:
    """Offset just after the last newline before ``size`` (0 if none): where ``end`` starts."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        block = os.pread(fd, pos - start, start)
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


class FileSource:
    """Reads every matching file; ``poll`` never blocks, ``wait`` sleeps until woken."""

    def __init__(
        self,
        cfg: FileInputConfig,
        store: CheckpointStore,
        prefix: str = "file",
        use_watchdog: bool = True,
        forget_after: float = 7 * 86400,
        notify: Wake | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        """``clock``: scan intervals, idle and deleted-file grace periods, checkpoint times."""
        self.cfg = cfg
        self.clock = clock
        self.store = store
        self.prefix = prefix
        self.discovery = Discovery(cfg.paths, cfg.exclude, use_watchdog, notify)
        self.files: dict[tuple[int, int], TailedFile] = {}
        self.by_stream: dict[str, TailedFile] = {}
        self._close_deleted_after = parse_duration(cfg.close_deleted_after)
        self._idle_eof = parse_duration(cfg.idle_eof_after)
        self._forget_after = forget_after
        self._next_scan = 0.0
        self._first_scan = True
        self._seq = 0
        self._matched = 0  # files matching the globs at the last scan
        self._warn = Throttle(WARN_EVERY, clock.monotonic)  # repeating: nothing matches, cannot open

    # -- discovery -------------------------------------------------------------------------

    def _new_stream_id(self, dev: int, ino: int) -> str:
        self._seq += 1
        return f"{self.prefix}:{dev}:{ino}:{int(self.clock.wall() * 1e9):x}{self._seq}"

    def _resume_entry(self, fd: int, dev: int, ino: int) -> tuple[str, dict[str, Any]] | None:
        for stream, e in self.store.streams.items():
            # Identity is global: any file input resumes a file, whatever its place in the list.
            if not stream.startswith("file") or e.get("dev") != dev or e.get("ino") != ino:
                continue
            fp = Fingerprint(int(e.get("fp_len", 0)), str(e.get("fp", "")))
            if fp.matches(fd):
                return stream, e
        return None

    def _open(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            METRICS.inc("file_open_errors_total")
            if self._warn.due(path):
                log.warning("cannot open %s: %s%s", path, exc.strerror, self._warn.suppressed(path))
            return
        self._warn.reset(path)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode) or key in self.files:
            os.close(fd)
            return
        resumed = self._resume_entry(fd, *key)
        if resumed is not None:
            stream, entry = resumed
            offset = int(entry.get("offset", 0))
            if offset > st.st_size:  # truncated while we were stopped
                log.info("%s is shorter than its checkpoint; reading from the start", path)
                stream, offset = self._new_stream_id(*key), 0
            else:
                log.info("resuming %s at offset %d", path, offset)
        else:
            stream = self._new_stream_id(*key)
            offset = 0
            if self._first_scan and self.cfg.start_at == "end":
                offset = _last_line_end(fd, st.st_size)
            log.info("new file %s (from offset %d)", path, offset)
        fp = Fingerprint.of(fd, self.cfg.fingerprint_bytes)
        splitter = LineSplitter(self.cfg.max_line_bytes, offset)
        tf = TailedFile(stream, path, fd, *key, splitter, fp, offset, last_data=self.clock.monotonic())
        self.files[key] = tf
        self.by_stream[stream] = tf
        self._stage(tf, offset)
        METRICS.set("open_files", len(self.files))

    def _stage(self, tf: TailedFile, offset: int) -> None:
        self.store.stage(
            tf.stream,
            path=tf.path,
            dev=tf.dev,
            ino=tf.ino,
            fp_len=tf.fingerprint.length,
            fp=tf.fingerprint.digest,
            offset=offset,
            seen=int(self.clock.wall()),
        )

    def nothing_matches(self) -> str:
        """Why this input reads nothing ("" when some file matches, or before the first scan)."""
        if self._first_scan or self._matched or self.files:
            return ""
        missing = sorted({str(watch_root(p)[0]) for p in self.cfg.paths if not watch_root(p)[0].is_dir()})
        if missing:
            return f"no file matches {', '.join(self.cfg.paths)} (missing directory {', '.join(missing)})"
        return f"no file matches {', '.join(self.cfg.paths)}"

    def _warn_if_nothing(self) -> None:
        why = self.nothing_matches()
        if not why:
            self._warn.reset("nothing")
        elif self._warn.due("nothing"):
            log.warning("input %s: %s; nothing to ship yet (looking again every scan)", self.prefix, why)

    def scan(self) -> None:
        """Match globs, open new files, and notice renamed-away or deleted ones."""
        at_path: set[tuple[int, int]] = set()
        paths = self.discovery.scan()
        self._matched = len(paths)
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            at_path.add(key)
            tf = self.files.get(key)
            if tf is None:
                self._open(path)
            elif tf.path != path:
                log.info("%s was renamed to %s", tf.path, path)
                tf.path = path
        for path in self.discovery.take_moved():
            # Created and rotated away between two scans: inotify saw the rename, read it out.
            self._open(path)
        now_s = int(self.clock.wall())
        for tf in list(self.files.values()):
            tf.at_path = tf.key in at_path
            entry = self.store.streams.get(tf.stream)
            if entry is not None and now_s - int(entry.get("seen", 0)) > self._forget_after / 10:
                self.store.stage(tf.stream, seen=now_s)  # open files are never forgotten
            if tf.fingerprint.length and not tf.fingerprint.matches(tf.fd):
                self._restart(tf, "its first bytes changed (copytruncate?)")
        self._first_scan = False
        self.housekeeping()
        self._prune_registry()
        self._warn_if_nothing()

    def _prune_registry(self) -> None:
        cutoff = self.clock.wall() - self._forget_after
        for stream, e in list(self.store.streams.items()):
            mine = stream.startswith("file") and stream not in self.by_stream
            if mine and int(e.get("seen", 0)) < cutoff:
                self.store.remove(stream)

    # -- reading ---------------------------------------------------------------------------

    def _restart(self, tf: TailedFile, why: str) -> None:
        """Content replaced under the same inode: ship it again from 0 as a new stream."""
        log.warning("%s: %s; reading it again from the start", tf.path, why)
        METRICS.inc("file_truncations_total")
        del self.by_stream[tf.stream]
        tf.stream = self._new_stream_id(tf.dev, tf.ino)
        self.by_stream[tf.stream] = tf
        tf.splitter = LineSplitter(self.cfg.max_line_bytes, 0)
        tf.backlog = []
        tf.pending = b""
        tf.read_pos = 0
        tf.fingerprint = Fingerprint.of(tf.fd, self.cfg.fingerprint_bytes)
        self._stage(tf, 0)

    def _close(self, tf: TailedFile, why: str) -> None:
        os.close(tf.fd)
        del self.files[tf.key]
        del self.by_stream[tf.stream]
        if tf.deleted_at is not None:
            size = tf.read_pos
            self.store.remove(tf.stream)  # nothing left to resume: its inode may be reused
            log.info("closed deleted file %s at offset %d (%s)", tf.path, size, why)
        else:
            log.info("closed %s (%s)", tf.path, why)
        METRICS.set("open_files", len(self.files))

    def _read(self, tf: TailedFile, budget: int, now: float) -> Chunk | None:
        size = os.fstat(tf.fd).st_size
        if size < tf.read_pos:
            self._restart(tf, f"it shrank from {tf.read_pos} to {size} bytes")
        elif size > tf.read_pos and tf.fingerprint.length and not tf.fingerprint.matches(tf.fd):
            # Truncated and written past our offset since we last looked: size alone cannot tell.
            self._restart(tf, "its first bytes changed (copytruncate?)")
        block, start, n = (b"", 0, 0) if tf.backlog else self._take_block(tf, budget, size)
        frames, tf.backlog = tf.backlog, []
        while not block and len(frames) < budget and tf.read_pos < size:
            data = self._pread(tf, size)
            if not data:
                break
            frames.extend(tf.splitter.feed(data))
        if len(frames) > budget:
            # Batches stay within their limits; the rest (at most one read) waits for next poll.
            frames, tf.backlog = frames[:budget], frames[budget:]
        if tf.fingerprint.length < self.cfg.fingerprint_bytes and tf.fingerprint.length < size:
            tf.fingerprint = Fingerprint.of(tf.fd, self.cfg.fingerprint_bytes)
        if block:
            tf.last_data = now
            METRICS.inc("lines_read_total", n)
            return Chunk(tf.stream, tf.path, position=start + len(block), block=block, block_start=start, n=n)
        if frames:
            tf.last_data = now
        elif tf.read_pos >= size and not tf.backlog and not tf.pending:
            idle = now - tf.last_data
            gone = not tf.at_path or tf.deleted_at is not None
            if gone and idle >= self._idle_eof:
                last = tf.splitter.flush()  # rotated away and idle: the line is complete
                if last is not None:
                    frames.append(last)
                elif not tf.splitter.pending:
                    self._close(tf, "rotated away and idle" if tf.deleted_at is None else "deleted")
        if not frames:
            return None
        METRICS.inc("lines_read_total", len(frames))
        return Chunk(tf.stream, tf.path, frames, position=frames[-1].end)

    def _pread(self, tf: TailedFile, size: int) -> bytes:
        data = os.pread(tf.fd, min(READ_SIZE, size - tf.read_pos), tf.read_pos)
        tf.read_pos += len(data)
        METRICS.inc("bytes_read_total", len(data))
        return data

    def _take_block(self, tf: TailedFile, budget: int, size: int) -> tuple[bytes, int, int]:
        """Up to ``budget`` complete lines as one block (block mode): ``(block, offset, lines)``,
        or ``(b"", 0, 0)``: then any lines read are in ``tf.backlog`` as frames (a line over
        ``max_line_bytes`` is near)."""
        block, start = tf.pending, tf.pending_start
        tf.pending = b""
        if not block and tf.read_pos < size:
            data = self._pread(tf, size)
            got = tf.splitter.feed_block(data) if data else None
            if got is None:
                tf.backlog = tf.splitter.feed(data)
                return b"", 0, 0
            block, start = got
        n = block.count(b"\n")
        if n > budget:  # keep the lines over the budget for later
            cut = len(block) - len(block.split(b"\n", budget)[-1])
            tf.pending, tf.pending_start = block[cut:], start + cut
            block, n = block[:cut], budget
        return block, start, n

    def housekeeping(self) -> None:
        """Close deleted files whose grace period is over, even while the output blocks us."""
        now = self.clock.monotonic()
        for tf in list(self.files.values()):
            st = os.fstat(tf.fd)
            if tf.deleted_at is None and st.st_nlink == 0:
                tf.deleted_at = now
                log.info("%s was deleted; reading what is left", tf.path)
            if tf.deleted_at is None or now - tf.deleted_at < self._close_deleted_after:
                continue
            size = st.st_size
            acked = int(self.store.streams.get(tf.stream, {}).get("offset", 0))
            if size > acked:
                METRICS.inc("file_deleted_unshipped_bytes_total", size - acked)
                log.warning(
                    "closing deleted %s with %d bytes not shipped (grace period expired)",
                    tf.path,
                    size - acked,
                )
            self._close(tf, "grace period for deleted files expired")

    def poll(self, max_records: int) -> list[Chunk]:
        now = self.clock.monotonic()
        if now >= self._next_scan or self.discovery.wake.is_set():
            self.discovery.wake.clear()
            self.scan()
            self._next_scan = now + self.cfg.scan_interval
        chunks = []
        for tf in list(self.files.values()):
            if max_records <= 0:
                break
            chunk = self._read(tf, max_records, now)
            if chunk is not None:
                chunks.append(chunk)
                max_records -= chunk.count()
        return chunks

    def lag(self) -> list[Lag]:
        behind = deleted = 0
        for tf in list(self.files.values()):
            acked = int(self.store.streams.get(tf.stream, {}).get("offset", 0))
            try:
                behind += max(0, os.fstat(tf.fd).st_size - acked)
            except OSError:
                continue
            deleted += tf.deleted_at is not None
        METRICS.set("open_deleted_files", deleted)
        return [Lag(self.prefix, "bytes", float(behind), note=self.nothing_matches())]

    def acked(self, stream: str, position: Any) -> None:
        tf = self.by_stream.get(stream)
        if tf is not None:
            self._stage(tf, int(position))
        elif stream in self.store.streams:
            self.store.stage(stream, offset=int(position), seen=int(self.clock.wall()))

    def close(self) -> None:
        self.discovery.close()
        for tf in list(self.files.values()):
            os.close(tf.fd)
        self.files.clear()
        self.by_stream.clear()
