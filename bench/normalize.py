"""Normalizer throughput against the floor of reading and parsing the same lines.

    python -m bench.normalize [--records 200000] [--runs 3]

Both are measured in this run on the same generated file: the baseline reads and parses every
line (orjson); the normalizer reads, parses, normalizes (ECS, masking) and serializes each
document as it would be indexed; where the install has the native path (a wheel build), also
through it (lines it leaves go to the Python normalizer, as in the daemon). Prints records/s
(median of runs) and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.generate import lines
from shipper.normalize import Document, Normalizer


def read_parse(path: Path) -> float:
    t = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            orjson.loads(line)
            n += 1
    return n / (time.perf_counter() - t)


def normalize(path: Path, native: bool = False) -> float:
    norm = Normalizer() if native else Normalizer(native=None)
    fast = norm.native.line if native else None
    t = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            raw = line.rstrip(b"\n")
            if fast is None or fast(raw) is None:
                r = norm.line(raw)
                if type(r) is Document:
                    orjson.dumps(r.body)
            n += 1
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        with open(path, "wb") as fh:
            for chunk_start in range(0, a.records, 10_000):
                fh.write(b"".join(lines(min(10_000, a.records - chunk_start), seed=chunk_start + 1)))
        base = statistics.median(read_parse(path) for _ in range(a.runs))
        norm = statistics.median(normalize(path) for _ in range(a.runs))
        has_native = Normalizer().native is not None
        fast = statistics.median(normalize(path, True) for _ in range(a.runs)) if has_native else None
    print(f"records: {a.records:,}, runs: {a.runs}")
    print(f"read + parse (baseline):        {base:>12,.0f} records/s")
    print(f"read + parse + normalize + ser: {norm:>12,.0f} records/s  ({norm / base:.2f}x the baseline)")
    result = {"baseline": base, "normalize": norm}
    if fast is not None:
        print(f"  the same, native path:        {fast:>12,.0f} records/s  ({fast / base:.2f}x the baseline)")
        result["native"] = fast
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
