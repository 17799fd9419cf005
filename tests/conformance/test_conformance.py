"""Elasticsearch's own YAML REST tests against the test server.

The list in expectations.json is explicit: every test is ``must_pass`` or ``out_of_scope`` with a
reason. A must-pass test failing fails the suite; a test in neither list fails too (classify it).
Skips when ../shared/es-rest-tests is absent (a user's checkout).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance.runner import Runner, load_cases
from tests.conftest import SHARED

ROOT = SHARED / "es-rest-tests"
EXPECT = json.loads(Path(__file__).with_name("expectations.json").read_text())
CASES = load_cases(ROOT) if ROOT.is_dir() else []


@pytest.fixture(scope="module")
def server():
    from tests.es_server import EsTestServer

    srv = EsTestServer().start()
    yield srv
    srv.stop()


@pytest.mark.skipif(not ROOT.is_dir(), reason=f"{ROOT} not present (only next to the developers' checkout)")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_yaml(case, server):
    if case.id in EXPECT["out_of_scope"]:
        pytest.skip("out of scope: " + EXPECT["out_of_scope"][case.id])
    assert case.id in EXPECT["must_pass"], (
        f"{case.id} is unclassified: run python -m tests.conformance.classify"
    )
    server.reset()
    Runner(server.url, ROOT / "api").run_case(case)


@pytest.mark.skipif(not ROOT.is_dir(), reason="../shared/es-rest-tests absent")
def test_expectations_cover_every_test_and_nothing_else():
    ids = {c.id for c in CASES}
    listed = set(EXPECT["must_pass"]) | set(EXPECT["out_of_scope"])
    assert ids == listed
    assert not set(EXPECT["must_pass"]) & set(EXPECT["out_of_scope"])
    assert len(EXPECT["must_pass"]) >= 200
