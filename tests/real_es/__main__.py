"""``python -m tests.real_es start|stop|env [--version V]``: see tests/real_es/__init__.py."""

from __future__ import annotations

import argparse

from tests.real_es import read_node, resolve_version, running_versions, start, stop


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.real_es", description=__doc__)
    ap.add_argument("command", choices=["start", "stop", "env"])
    ap.add_argument("--version", default=None, help="8.19.21 (default), 9.5.4, or 8 / 9")
    ap.add_argument("--timeout", type=float, default=180, help="seconds to wait for the node")
    args = ap.parse_args()
    if args.command == "start":
        node = start(resolve_version(args.version or "8"), args.timeout)
        print("\n".join(node.env_lines()), flush=True)
        return 0
    versions = [resolve_version(args.version)] if args.version else running_versions()
    if args.command == "env":
        nodes = [n for n in map(read_node, versions) if n is not None]
        for n in nodes:
            print("\n".join(n.env_lines()))
        return 0 if nodes else 1
    for v in versions:
        if stop(v):
            print(f"real_es: stopped Elasticsearch {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
