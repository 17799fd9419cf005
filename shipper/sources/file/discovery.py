"""Find files matching the configured globs; watchdog (inotify) wakes us when they change.

watchdog can miss events and NFS has none, so the caller also rescans on an interval.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from shipper.wake import Wake

log = logging.getLogger(__name__)


def watch_root(pattern: str) -> tuple[Path, bool]:
    """The deepest directory of ``pattern`` without glob magic, and whether to watch recursively."""
    parts = Path(pattern).parts
    root: list[str] = []
    for p in parts[:-1]:
        if glob.has_magic(p):
            return Path(*root) if root else Path("."), True
        root.append(p)
    return (Path(*root) if root else Path(".")), False


class _Wake(FileSystemEventHandler):
    def __init__(self, discovery: Discovery) -> None:
        self.discovery = discovery

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.event_type == "moved" and not event.is_directory:
            self.discovery.note_move(str(event.src_path), str(event.dest_path))
        for e in self.discovery.events:
            e.set()


class Discovery:
    """Glob expansion plus an inotify-backed wake-up event."""

    def __init__(
        self,
        patterns: list[str],
        exclude: list[str],
        use_watchdog: bool = True,
        notify: Wake | None = None,
    ) -> None:
        self.patterns = patterns
        self.exclude = exclude
        self.wake = Wake()  # "rescan the globs"
        self.events = (self.wake,) if notify is None else (self.wake, notify)
        self._moved: list[str] = []  # files renamed away from a matching path (inotify)
        self._lock = threading.Lock()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._watched: set[Path] = set()
        if use_watchdog:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
            self._schedule()

    def _schedule(self) -> None:
        if self._observer is None:
            return
        for pattern in self.patterns:
            root, recursive = watch_root(pattern)
            if root in self._watched or not root.is_dir():
                continue
            try:
                self._observer.schedule(_Wake(self), str(root), recursive=recursive)
                self._watched.add(root)
            except OSError as exc:  # e.g. inotify watch limit reached: the rescan still works
                log.warning("cannot watch %s (%s); relying on periodic scans", root, exc)

    def matches(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) for p in self.patterns) and not any(
            fnmatch.fnmatch(path, ex) for ex in self.exclude
        )

    def note_move(self, src: str, dest: str) -> None:
        """A file left a matching path: it may hold lines no scan has seen yet."""
        if self.matches(src) and not self.matches(dest):
            with self._lock:
                self._moved.append(dest)

    def take_moved(self) -> list[str]:
        """Destinations of renames away from matching paths since the last call."""
        with self._lock:
            moved, self._moved = self._moved, []
        return [p for p in moved if os.path.isfile(p)]

    def scan(self) -> list[str]:
        """Paths of regular files currently matching a pattern and no exclude pattern."""
        self._schedule()  # directories created since the last scan
        found: dict[str, None] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern, recursive=True)):
                if any(fnmatch.fnmatch(path, ex) for ex in self.exclude):
                    continue
                if os.path.isfile(path):
                    found[path] = None
        return list(found)

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
