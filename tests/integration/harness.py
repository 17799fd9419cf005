"""Helpers to drive the pipeline in-process and to write Logto-like log lines."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from shipper.configfile import parse_config
from shipper.pipeline.runner import Runner
from shipper.wiring import build_runner


def record(i: int, tag: str = "r") -> bytes:
    return orjson.dumps(
        {
            "tenantId": "default",
            "id": f"{tag}{i:07d}",
            "key": "Interaction.SignIn.Submit",
            "createdAt": 1755763200000 + i,
            "payload": {"result": "Success", "ip": "10.0.0.1"},
        }
    )


def write_lines(path: Path, ids: range, tag: str = "r", mode: str = "ab") -> None:
    with open(path, mode) as fh:
        fh.write(b"".join(record(i, tag) + b"\n" for i in ids))


def expected(ids: range, tag: str = "r") -> list[str]:
    return [f"{tag}{i:07d}" for i in ids]


def output_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]  # a line being written by a live daemon is not read
    return [orjson.loads(line)["event"]["id"] for line in complete.splitlines() if line]


def assert_exactly_once(got: list[str], want: list[str]) -> None:
    dups = [k for k, n in Counter(got).items() if n > 1]
    assert not dups, f"{len(dups)} duplicated ids, e.g. {dups[:5]}"
    missing = set(want) - set(got)
    assert not missing, f"{len(missing)} missing ids, e.g. {sorted(missing)[:5]}"
    extra = set(got) - set(want)
    assert not extra, f"unexpected ids {sorted(extra)[:5]}"


class Pipeline:
    """A file-input, file-output pipeline under ``tmp``; ``pump`` steps it in this thread."""

    def __init__(
        self,
        tmp: Path,
        paths: list[str] | None = None,
        output: dict[str, Any] | None = None,
        index: dict[str, Any] | None = None,
        inputs: list[dict[str, Any]] | None = None,
        workers: int = 2,  # explicit, so one-CPU machines exercise the worker pool too
        detect: dict[str, Any] | None = None,
        **input_opts: Any,
    ) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.out = tmp / "out.ndjson"
        self.state = tmp / "state"
        opts = {"scan_interval": 0.05, "idle_eof_after": "200ms", **input_opts}
        self.cfg = parse_config(
            {
                "state": {"dir": str(self.state), "checkpoint_interval": 0.05},
                "inputs": inputs
                or [{"type": "file", "paths": paths or [str(self.logs / "*.jsonl")], **opts}],
                "output": output or {"type": "file", "path": str(self.out)},
                # the fixtures are from 2025: past the default retention (tests of that say so)
                "index": {"ship_expired": True, **(index or {})},
                "pipeline": {"workers": workers},
                "detect": detect or {},
            },
            "test",
            env={},
        )
        self.runner: Runner | None = None

    def start(self) -> Pipeline:
        self.runner = build_runner(self.cfg)
        limits = self.runner.limits
        self.runner.limits = type(limits)(limits.max_docs, limits.max_bytes, max_wait=0.05)
        return self

    def pump(self, until: Any = None, timeout: float = 10.0, min_time: float = 0.0) -> None:
        assert self.runner is not None
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            self.runner.step()
            if time.monotonic() - start >= min_time and until is not None and until():
                return
            time.sleep(0.01)
        if until is not None:
            raise AssertionError(f"condition not reached in {timeout}s; have {len(self.ids())} docs")

    def pump_until_count(self, n: int, timeout: float = 10.0) -> None:
        self.pump(lambda: len(self.ids()) >= n, timeout)

    def stop(self) -> int:
        assert self.runner is not None
        code = self.runner.shutdown()
        self.runner = None
        return code

    def ids(self) -> list[str]:
        return output_ids(self.out)

    def dead_letters(self) -> list[dict[str, Any]]:
        p = self.state / "dead-letter" / "records.jsonl"
        return [orjson.loads(x) for x in p.read_bytes().splitlines()] if p.exists() else []


def same_inode_recreate(path: Path, data: bytes) -> bool:
    """Delete ``path`` and create it again with ``data``; True if the inode was reused."""
    old = os.stat(path).st_ino
    path.unlink()
    path.write_bytes(data)
    return os.stat(path).st_ino == old
