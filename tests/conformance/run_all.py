"""Print pass/fail/skip for every YAML test: ``python -m tests.conformance.run_all``."""

from __future__ import annotations

import sys
from collections import Counter

from tests.conformance.runner import Failure, Runner, Skip, load_cases
from tests.conftest import SHARED
from tests.es_server import EsTestServer


def main() -> None:
    root = SHARED / "es-rest-tests"
    srv = EsTestServer().start()
    results = Counter()
    for case in load_cases(root):
        srv.reset()
        r = Runner(srv.url, root / "api")
        try:
            r.run_case(case)
            status, why = "PASS", ""
        except Skip as e:
            status, why = "SKIP", str(e)
        except Failure as e:
            status, why = "FAIL", str(e)
        except Exception as e:
            status, why = "ERROR", f"{type(e).__name__}: {e}"
        results[status] += 1
        if "-q" not in sys.argv or status != "PASS":
            print(f"{status:5} {case.id}  {why[:240]}")
    print(dict(results))
    srv.stop()


if __name__ == "__main__":
    main()
