"""Install logto-shipper as ``pip install .`` does (normalizer compiled by mypyc where a C
compiler is at hand, see hatch_build.py) into its own venv, built from a clean copy of the tree.

    python -m bench.compiled [--venv bench/out/compiled-venv]

The copy holds exactly the tracked and new files, so the benchmark measures the tree as it would
be committed. Prints the venv's ``logto-shipper`` path; ``bench.run`` uses it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wheel(out: Path) -> Path:
    """The wheel ``pip install .`` builds, from a copy of the tree (tracked and new files), in ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for rel in filter(None, (r.decode() for r in listed)):
            if (ROOT / rel).is_file():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, src / rel)
        env = {k: v for k, v in os.environ.items() if k != "LOGTO_SHIPPER_PURE"}
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
            env=env,
            check=True,
        )
    return next(out.glob("logto_shipper-*.whl"))


def build(venv: Path) -> Path:
    """A venv with the compiled wheel and its dependencies; returns its ``logto-shipper``."""
    with tempfile.TemporaryDirectory() as tmp:
        whl = wheel(Path(tmp))
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--force-reinstall", str(whl)], check=True
        )
    return venv / "bin" / "logto-shipper"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="install logto-shipper as `pip install .` builds it, into a venv"
    )
    ap.add_argument("--venv", type=Path, default=ROOT / "bench" / "out" / "compiled-venv")
    a = ap.parse_args(argv)
    print(build(a.venv))


if __name__ == "__main__":
    main()
