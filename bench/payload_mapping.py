"""What each mapping of ``logto.payload`` would index, measured on generated records.

    python -m bench.payload_mapping [--records 20000]

``flattened`` indexes every leaf value as a keyword twice (under the root field and under its
key path), skipping values longer than ``ignore_above``; ``object`` with ``enabled: false``
indexes nothing; a keyword copy of the serialized payload indexes one term per document that only
an exact match of the whole payload can find. Counts terms and bytes per document, the proxy for
index size and indexing cost that can be computed without a cluster.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import orjson

from bench.generate import lines
from shipper.normalize import Document, Normalizer

IGNORE_ABOVE = 1024


def leaves(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v, path)]
    if value is None:
        return []
    return [(path, ("true" if value else "false") if isinstance(value, bool) else str(value))]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    a = ap.parse_args(argv)
    n = Normalizer()
    flat_terms, flat_bytes, copy_bytes, skipped, source_bytes = [], [], [], 0, []
    for line in lines(a.records, seed=11):
        d = n.line(line.rstrip(b"\n"))
        if type(d) is not Document:
            continue
        payload = d.body["logto"]["payload"]
        kept = [(p, v) for p, v in leaves(payload) if len(v) <= IGNORE_ABOVE]
        skipped += len(leaves(payload)) - len(kept)
        flat_terms.append(2 * len(kept))
        flat_bytes.append(sum(len(v) * 2 + len(p) for p, v in kept))
        copy_bytes.append(len(orjson.dumps(payload)))
        source_bytes.append(len(orjson.dumps(d.body)))
    out = {
        "flattened_terms_per_doc": statistics.mean(flat_terms),
        "flattened_term_bytes_per_doc": statistics.mean(flat_bytes),
        "keyword_copy_bytes_per_doc": statistics.mean(copy_bytes),
        "source_bytes_per_doc": statistics.mean(source_bytes),
        "values_over_ignore_above": skipped,
    }
    print(f"records: {len(flat_terms):,}")
    print(f"document _source: {out['source_bytes_per_doc']:.0f} B/doc")
    print(
        f"flattened:        {out['flattened_terms_per_doc']:.1f} keyword terms/doc, "
        f"{out['flattened_term_bytes_per_doc']:.0f} B of terms/doc "
        f"({out['values_over_ignore_above']} values over ignore_above kept in _source only)"
    )
    print("enabled: false:   0 terms/doc (payload not searchable)")
    print(
        f"keyword copy:     1 term/doc of {out['keyword_copy_bytes_per_doc']:.0f} B "
        "(searchable only by the exact whole payload)"
    )
    return out


if __name__ == "__main__":
    main()
