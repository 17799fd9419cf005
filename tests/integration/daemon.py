"""Run the real ``logto-shipper run`` process for drills (kill -9, signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class Daemon:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._count_at_start = 0  # "shipping started" lines in the log before the last start

    def start(self, *args: str) -> Daemon:
        self._count_at_start = (
            self.log.read_text(errors="replace").count("shipping started") if self.log.exists() else 0
        )
        fh = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "--config", str(self.config), *args, "run"],
            cwd=ROOT,
            stdout=fh,
            stderr=fh,
            env=self.env,
        )
        fh.close()
        return self

    def wait_started(self, timeout: float = 60) -> None:
        """Until this start has logged "shipping started" (startup time varies a lot between
        machines; a drill that kills during imports tests nothing)."""
        before = self._count_at_start
        self.wait_for(
            lambda: self.log.read_text(errors="replace").count("shipping started") > before, timeout
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait_for(self, cond: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; daemon log tail:\n{self.log.read_text()[-3000:]}")
