"""Run Elasticsearch's YAML REST tests against an HTTP endpoint.

The format (``../shared/es-rest-tests/SOURCES.md``): each file holds ``setup``/``teardown`` and
named tests, each a list of steps: ``do`` (an API call, resolved through the API definitions
in ``api/*.json`` to method + path + query), ``match``, ``is_true``, ``is_false``, ``length``,
``gt``/``gte``/``lt``/``lte``, ``set``, ``exists``, ``not_exists``, ``contains``, ``skip`` and
``requires``. Unsupported runner features skip the test with the reason.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml

SUPPORTED_FEATURES = {
    "allowed_warnings",
    "warnings",
    "default_shards",
    "headers",
    "contains",
    "allowed_warnings_regex",
    "warnings_regex",
    "node_selector",
    "close_to",
    "arbitrary_key",
}
SERVER_VERSION = (8, 15, 0)
CATCH_STATUS = {
    "missing": 404,
    "conflict": 409,
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "unavailable": 503,
    "request_timeout": 408,
}


class Skip(Exception):
    pass


class Failure(AssertionError):
    pass


@dataclass
class Case:
    suite: str
    file: str
    name: str
    setup: list[Any]
    teardown: list[Any]
    steps: list[Any]

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.file}::{self.name}"


def load_cases(root: Path) -> list[Case]:
    cases = []
    for path in sorted((root / "test").glob("*/*.yml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        setup: list[Any] = []
        teardown: list[Any] = []
        tests = []
        for d in docs:
            for name, steps in d.items():
                if name == "setup":
                    setup = steps
                elif name == "teardown":
                    teardown = steps
                else:
                    tests.append((name, steps))
        for name, steps in tests:
            cases.append(Case(path.parent.name, path.name, name, setup, teardown, steps))
    return cases


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.strip().split(".") if x.isdigit())


def check_skip(spec: dict[str, Any]) -> None:
    feats = spec.get("features", spec.get("test_runner_features", []))
    feats = [feats] if isinstance(feats, str) else feats
    unsupported = [f for f in feats if f not in SUPPORTED_FEATURES and f != "capabilities"]
    if unsupported:
        raise Skip(f"runner feature {unsupported} not supported")
    if "capabilities" in spec:
        raise Skip("needs the capabilities API, which the test server does not implement")
    version = spec.get("version")
    if version:
        if str(version).strip() == "all":
            raise Skip(spec.get("reason", "skipped for all versions"))
        for rng in str(version).split(","):
            lo, _, hi = rng.partition("-")
            lo_v = _version(lo) if lo.strip() else (0,)
            hi_v = _version(hi) if hi.strip() else (99,)
            if lo_v <= SERVER_VERSION <= hi_v:
                raise Skip(spec.get("reason", f"skipped for version {rng}"))
    cf = spec.get("cluster_features")
    if cf:
        cfs = [cf] if isinstance(cf, str) else cf
        for f in cfs:
            m = re.fullmatch(r"gte_v(\d+\.\d+\.\d+)", f)
            if m and _version(m.group(1)) <= SERVER_VERSION:
                continue
            if f in ("bulk_require_alias",):
                continue
            raise Skip(f"cluster feature [{f}] not offered by the test server")


def check_requires(spec: dict[str, Any]) -> None:
    check_skip({k: v for k, v in spec.items() if k != "reason"})


class Runner:
    def __init__(self, base_url: str, api_dir: Path) -> None:
        self.base = base_url.rstrip("/")
        self.api_dir = api_dir
        self._apis: dict[str, Any] = {}
        self.stash: dict[str, Any] = {}
        self.last: Any = None
        self.last_status = 0
        self.last_text = ""

    def api(self, name: str) -> dict[str, Any]:
        if name not in self._apis:
            p = self.api_dir / f"{name}.json"
            if not p.exists():
                raise Skip(f"API [{name}] has no definition in api/")
            self._apis[name] = json.loads(p.read_text())[name]
        return self._apis[name]

    def resolve(self, v: Any) -> Any:
        if isinstance(v, str):
            if v.startswith("$") and v[1:] in self.stash:
                return self.stash[v[1:]]
            if v == "$body":
                return self.last
            return re.sub(r"\$\{(\w+)\}", lambda m: str(self.stash.get(m.group(1), m.group(0))), v)
        if isinstance(v, dict):
            return {self.resolve(k): self.resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v

    def call(self, name: str, args: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, str]:
        spec = self.api(name)
        args = dict(self.resolve(args or {}))
        body = args.pop("body", None)
        args.pop("ignore", None)
        best = None
        for path in spec["url"]["paths"]:
            if path.get("deprecated"):
                continue
            parts = path.get("parts", {})
            if all(p in args for p in parts) and (best is None or len(parts) > len(best.get("parts", {}))):
                best = path
        if best is None:
            raise ParamError(f"missing required path parts for [{name}]")
        url = best["path"]
        for part in best.get("parts", {}):
            val = args.pop(part)
            val = ",".join(str(x) for x in val) if isinstance(val, list) else str(val)
            url = url.replace("{" + part + "}", quote(val, safe=",*"))
        methods = best["methods"]
        method = methods[0]
        if body is not None and method in ("GET", "DELETE") and len(methods) > 1:
            method = next((m for m in methods if m in ("POST", "PUT")), method)
        query = {k: (",".join(map(_s, v)) if isinstance(v, list) else _s(v)) for k, v in args.items()}
        data = None
        ctype = "application/json"
        if body is not None:
            if name in ("bulk",) or (
                isinstance(body, list) and spec.get("body", {}).get("serialize") == "bulk"
            ):
                lines = body if isinstance(body, list) else [body]
                data = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()
                ctype = "application/x-ndjson"
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
        full = self.base + url + ("?" + urlencode(query) if query else "")
        req = urllib.request.Request(
            full,
            data=data,
            method=method,
            headers={"Content-Type": ctype, "Accept": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if method == "HEAD":
            return status, status == 200, text if status >= 500 else ""
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return status, parsed, text

    def get_path(self, path: str) -> Any:
        if path in ("", "$body"):
            return self.last
        cur = self.last
        for part in re.split(r"(?<!\\)\.", path):
            part = self.resolve(part.replace("\\.", "."))
            if isinstance(cur, list):
                try:
                    cur = cur[int(part)]
                except (ValueError, IndexError):
                    raise Failure(f"path [{path}]: no element [{part}]") from None
            elif isinstance(cur, dict):
                if part not in cur:
                    return _Missing
                cur = cur[part]
            else:
                return _Missing
        return cur

    def run_steps(self, steps: list[Any]) -> None:
        for step in steps:
            ((kind, spec),) = step.items()
            getattr(self, "step_" + kind, self.step_unknown)(spec, kind)

    def step_unknown(self, spec: Any, kind: str) -> None:
        raise Skip(f"runner step [{kind}] not supported")

    def step_skip(self, spec: Any, kind: str) -> None:
        check_skip(spec)

    def step_requires(self, spec: Any, kind: str) -> None:
        check_requires(spec)

    def step_do(self, spec: Any, kind: str) -> None:
        spec = dict(spec)
        catch = spec.pop("catch", None)
        headers = spec.pop("headers", {}) or {}
        for k in (
            "warnings",
            "allowed_warnings",
            "allowed_warnings_regex",
            "warnings_regex",
            "node_selector",
        ):
            spec.pop(k, None)
        ((name, args),) = spec.items()
        try:
            status, body, text = self.call(name, args or {}, headers)
        except ParamError as exc:
            if catch == "param":
                return
            raise Failure(str(exc)) from None
        self.last, self.last_status, self.last_text = body, status, text
        if catch is None:
            if isinstance(body, bool):
                return  # HEAD: the answer is the status, 404 included
            if status >= 400 and not (status == 404 and (args or {}).get("ignore") in (404, [404])):
                raise Failure(f"[{name}] returned {status}: {text[:500]}")
            return
        if catch == "param":
            raise Failure(f"[{name}] expected a client-side parameter error")
        if catch == "request":
            if status < 400 or status in (404, 409, 403, 401):
                raise Failure(f"[{name}] expected a request error, got {status}")
        elif catch in CATCH_STATUS:
            if status != CATCH_STATUS[catch]:
                raise Failure(
                    f"[{name}] expected {CATCH_STATUS[catch]} ({catch}), got {status}: {text[:300]}"
                )
        elif catch.startswith("/"):
            if status < 400:
                raise Failure(f"[{name}] expected an error matching {catch}, got {status}")
            if not re.search(catch.strip("/"), text):
                raise Failure(f"[{name}] error does not match {catch}: {text[:400]}")
        else:
            raise Skip(f"catch [{catch}] not supported")

    def step_set(self, spec: Any, kind: str) -> None:
        for path, name in spec.items():
            self.stash[name] = self.get_path(path)

    def step_match(self, spec: Any, kind: str) -> None:
        for path, expected in spec.items():
            actual = self.get_path(path)
            expected = self.resolve(expected)
            if (
                isinstance(expected, str)
                and len(expected) > 1
                and expected.strip().startswith("/")
                and expected.strip().endswith("/")
            ):
                rx = expected.strip()[1:-1]
                if actual is _Missing or not re.search(
                    rx, str(actual) if not isinstance(actual, str) else actual, re.X
                ):
                    raise Failure(f"match {path}: {actual!r} !~ {expected}")
                continue
            if not _equal(actual, expected):
                raise Failure(f"match {path}: got {_short(actual)}, expected {_short(expected)}")

    def step_is_true(self, spec: Any, kind: str) -> None:
        v = self.get_path(str(spec or ""))
        if v is _Missing or (v in (None, False, "", "false", 0) and v is not True):
            raise Failure(f"is_true {spec}: {v!r}")

    def step_is_false(self, spec: Any, kind: str) -> None:
        v = self.get_path(str(spec or ""))
        if not (v is _Missing or v in (None, False, "", "false", 0)):
            raise Failure(f"is_false {spec}: {_short(v)}")

    def step_exists(self, spec: Any, kind: str) -> None:
        if self.get_path(str(spec)) is _Missing:
            raise Failure(f"exists {spec}")

    def step_not_exists(self, spec: Any, kind: str) -> None:
        if self.get_path(str(spec)) is not _Missing:
            raise Failure(f"not_exists {spec}")

    def step_length(self, spec: Any, kind: str) -> None:
        for path, n in spec.items():
            v = self.get_path(path)
            if v is _Missing or len(v) != int(self.resolve(n)):
                raise Failure(f"length {path}: {0 if v is _Missing else len(v)} != {n}")

    def _cmp(self, spec: Any, op: Any, kind: str) -> None:
        for path, n in spec.items():
            v = self.get_path(path)
            n = self.resolve(n)
            if v is _Missing or not op(v, n):
                raise Failure(f"{kind} {path}: {v!r} vs {n!r}")

    def step_gt(self, spec: Any, kind: str) -> None:
        self._cmp(spec, lambda a, b: a > b, kind)

    def step_gte(self, spec: Any, kind: str) -> None:
        self._cmp(spec, lambda a, b: a >= b, kind)

    def step_lt(self, spec: Any, kind: str) -> None:
        self._cmp(spec, lambda a, b: a < b, kind)

    def step_lte(self, spec: Any, kind: str) -> None:
        self._cmp(spec, lambda a, b: a <= b, kind)

    def step_contains(self, spec: Any, kind: str) -> None:
        for path, item in spec.items():
            v = self.get_path(path)
            if v is _Missing or not any(
                _equal(x, self.resolve(item))
                or (
                    isinstance(x, dict)
                    and isinstance(item, dict)
                    and all(_equal(x.get(k), iv) for k, iv in item.items())
                )
                for x in v
            ):
                raise Failure(f"contains {path}: {item!r} not in {_short(v)}")

    def step_close_to(self, spec: Any, kind: str) -> None:
        for path, d in spec.items():
            v = self.get_path(path)
            if v is _Missing or abs(float(v) - float(d["value"])) > float(d.get("error", 0)):
                raise Failure(f"close_to {path}: {v!r}")

    def run_case(self, case: Case) -> None:
        self.stash.clear()
        self.last = None
        try:
            # A skip in the test itself must take effect before setup runs.
            for step in case.steps:
                ((kind, spec),) = step.items()
                if kind in ("skip", "requires"):
                    check_skip(spec) if kind == "skip" else check_requires(spec)
            for step in case.setup:
                ((kind, spec),) = step.items()
                if kind in ("skip", "requires"):
                    check_skip(spec) if kind == "skip" else check_requires(spec)
            self.run_steps(case.setup)
            self.run_steps(case.steps)
        finally:
            with contextlib.suppress(Failure, Skip):
                self.run_steps(case.teardown)


class ParamError(Exception):
    pass


class _MissingT:
    def __repr__(self) -> str:
        return "<missing>"


_Missing = _MissingT()


def _s(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, str) and str(b).lower() == a)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, int | float):
        return a == str(b)
    return a == b


def _short(v: Any) -> str:
    s = json.dumps(v, default=str) if v is not _Missing else "<missing>"
    return s if len(s) < 300 else s[:300] + "..."
