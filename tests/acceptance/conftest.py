"""The acceptance suite: the wheel as ``pip install`` builds it, in clean venvs, driven through
the installed ``logto-shipper`` script as a person would (see README "Tests").

Run by ``.ci/run`` after the main suite:
``SHIPPER_ACCEPTANCE=1 .venv/bin/python -m pytest -p no:xdist tests/acceptance``. The harness
(the Elasticsearch test server, a PostgreSQL cluster) runs from the suite's venv; the product
runs only from the clean venvs, which have exactly what the README's install gives them:
``plain`` (``pip install logto-shipper``), ``postgres`` and ``test`` (each extra).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

VENVS = {"plain": "", "postgres": "[postgres]", "test": "[test]"}


def _install(base: Path, name: str, extra: str, whl: Path) -> Path:
    venv = base / name
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    if (venv / "bin" / "logto-shipper").exists():  # a kept dir (SHIPPER_ACCEPTANCE_DIR): new code only
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(whl)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, f"{whl}{extra}"], check=True)
    return venv / "bin" / "logto-shipper"


@pytest.fixture(scope="session")
def installed() -> Iterator[dict[str, Path]]:
    """{venv name: its logto-shipper}, built once per run from a copy of the tree."""
    from bench.compiled import wheel

    keep = os.environ.get("SHIPPER_ACCEPTANCE_DIR")
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="shipper-acceptance-"))
    base.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(base / "wheel", ignore_errors=True)
    whl = wheel(base / "wheel")
    with ThreadPoolExecutor(len(VENVS)) as pool:
        futures = {n: pool.submit(_install, base, n, extra, whl) for n, extra in VENVS.items()}
        yield {n: f.result() for n, f in futures.items()}
