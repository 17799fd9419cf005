"""What a person sees: the console script in a pseudo-terminal of 80 and 130 columns (pexpect),
and the hints, vocabulary and waiting behaviour of the search commands."""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson
import pexpect
import pytest
from click.testing import CliRunner

from cli.main import cli
from shipper.normalize import Normalizer
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.sources.webhook import record_line
from tests.cli.test_search_cmd import DATA, NOW, loaded  # noqa: F401  (the fixture)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EVENT_IDS = {r["id"] for r in DATA}


def screen(cfg, *args, columns: int, env: dict[str, str] | None = None, timeout: float = 30) -> str:
    """Everything the command draws in a terminal ``columns`` wide, colour codes kept."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli", "--config", str(cfg), *args],
        dimensions=(50, columns),
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            **(env or {}),
        },
        encoding="utf-8",
        timeout=timeout,
    )
    out = child.read()
    child.close()
    return out.replace("\r\n", "\n")


def lines_of(text: str) -> list[str]:
    """The screen's lines without colour codes and without the daemon library's log lines (a
    real node's tests log in with a password over plain http, which is warned about)."""
    plain = (ANSI.sub("", line) for line in text.splitlines())
    return [line for line in plain if not re.match(r"(DEBUG|INFO|WARNING|ERROR) shipper\.", line)]


def _header_and_rows(lines: list[str]) -> tuple[str, list[str]]:
    header = next(line for line in lines if line.startswith("TIME ("))
    return header, lines[lines.index(header) + 1 :]


@pytest.mark.parametrize("columns", [80, 130])
def test_search_table_fits_the_terminal_and_never_cuts_an_id(loaded, columns):  # noqa: F811
    out = screen(loaded, "search", "--since", "30d", "--limit", "40", columns=columns)
    lines = lines_of(out)
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    header, rows = _header_and_rows(lines)
    zone = re.match(r"TIME \((UTC|[+-]\d\d:\d\d)\)", header)
    assert zone, header  # the zone the times are in
    # every id whole on one line, in the ID column
    id_col = header.index("ID")
    shown = {m for line in rows for m in re.findall(r"\blog\d{5}\b", line)}
    assert shown == EVENT_IDS, EVENT_IDS - shown
    for line in rows:
        for m in re.finditer(r"\blog\d{5}\b", line):
            assert m.start() == id_col, line
    # the cells start where their headers do
    ev_col = header.index("EVENT")
    assert any(line[ev_col:].startswith("Interaction.SignIn.Submit") for line in rows)
    assert "\x1b[" in out  # a terminal gets colour ...
    if columns == 80:  # ... and narrow terminals two lines per event, details indented
        assert any(line.startswith("    user alice") for line in rows)
    else:
        assert header.split() == [
            "TIME",
            zone.group(0).split()[1],
            "EVENT",
            "RESULT",
            "USER",
            "APPLICATION",
            "IP",
            "ID",
        ]


def test_no_color_and_color_never_and_always(loaded):  # noqa: F811
    for env, args in (({"NO_COLOR": "1"}, ()), ({}, ("--color", "never"))):
        out = screen(loaded, *args, "search", "--since", "30d", "--limit", "3", columns=130, env=env)
        assert "✓ success" in out and "\x1b[" not in out, (env, args)
    r = CliRunner().invoke(cli, ["--config", str(loaded), "--color", "always", "search", "--format", "table"])
    assert "\x1b[" in r.stdout  # forced into a pipe
    r = CliRunner(env={"LOGTO_SHIPPER_COLOR": "always", "NO_COLOR": "1"}).invoke(
        cli, ["--config", str(loaded), "search", "--format", "table"]
    )
    assert "\x1b[" in r.stdout  # an explicit choice wins over NO_COLOR


def test_top_histogram_has_an_axis_and_fits(loaded, es_target):  # noqa: F811
    # events spread over 400 days: more buckets than columns
    es = es_target.client()
    namer = IndexNamer(es_target.prefix, "default")
    n = Normalizer()
    ops = []
    for i in range(40):
        d = n.record(
            {
                "tenantId": "default",
                "id": f"old{i:05d}",
                "key": "Interaction.SignIn.Submit",
                "createdAt": int((NOW - timedelta(days=10 * i)).timestamp() * 1000),
                "payload": {"result": "Error", "userId": "dave", "ip": "198.51.100.1"},
            }
        )
        ops += [{"create": {"_index": namer(d.epoch_ms), "_id": d.id}}, d.body]
    es.bulk(operations=ops, refresh=True)
    out = screen(loaded, "top", "users", "--since", "500d", "--by", "day", "--limit", "3", columns=80)
    lines = lines_of(out)
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    header = next(line for line in lines if line.startswith("USERS"))
    col = header.index("HISTOGRAM")
    footer = next(line for line in lines if "1 char = " in line)
    unit = re.search(r"1 char = (\d+) days", footer)
    assert unit and int(unit.group(1)) >= 5  # 391 days folded into the width
    start, end = footer[col:].split()[0], footer[col:].split()[-1]
    assert start == (NOW - timedelta(days=390)).strftime("%Y-%m-%d")
    assert end == NOW.strftime("%Y-%m-%d") or end == (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
    dave = next(line for line in lines if line.startswith("dave"))
    assert set(dave[col:].strip()) <= set("▁▂▃▄▅▆▇█ ")


def test_tail_says_it_waits_and_keeps_its_widths(loaded, es_target):  # noqa: F811
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli", "--config", str(loaded), "tail", "--interval", "0.3", "--user", "erin"],
        dimensions=(50, 130),
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "TERM": "xterm", "NO_COLOR": "1"},
        encoding="utf-8",
        timeout=30,
    )
    seen = io.StringIO()
    child.logfile_read = seen
    try:
        child.expect("waiting for events")
        es = es_target.client()
        namer = IndexNamer(es_target.prefix, "default")
        n = Normalizer()
        for batch, key in enumerate(("Interaction.SignIn.Verification.Password.Submit", "RevokeToken")):
            d = n.record(
                {
                    "tenantId": "default",
                    "id": f"erin{batch}",
                    "key": key,
                    "createdAt": int(datetime.now(UTC).timestamp() * 1000),
                    "payload": {"result": "Success", "userId": "erin", "ip": "192.0.2.1"},
                }
            )
            es.index(index=namer(d.epoch_ms), id=d.id, document=d.body, refresh=True, op_type="create")
            child.expect(f"erin{batch}")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    rows = [line for line in lines_of(seen.getvalue().replace("\r\n", "\n")) if re.search(r"erin\d", line)]
    assert len(rows) == 2 and rows[0].index("erin0") == rows[1].index("erin1")  # same ID column
    assert rows[0].index("✓") == rows[1].index("✓")


def test_hints_when_nothing_is_found(loaded):  # noqa: F811
    r = CliRunner().invoke(cli, ["--config", str(loaded), "search", "--user", "carol"])
    assert r.exit_code == 1
    assert "hint: 1 matching events lie outside the window; the newest is from" in r.stderr
    assert "hint: try --since 11d" in r.stderr
    assert (
        CliRunner()
        .invoke(cli, ["--config", str(loaded), "search", "--user", "carol", "--since", "11d"])
        .exit_code
        == 0
    )
    r = CliRunner().invoke(cli, ["--config", str(loaded), "top", "ips", "--user", "carol"])
    assert r.exit_code == 1 and "hint: try --since 11d" in r.stderr
    r = CliRunner().invoke(cli, ["--config", str(loaded), "search", "--user", "nobody"])
    assert r.exit_code == 1 and "hint: no indexed event matches these filters at any time" in r.stderr
    r = CliRunner().invoke(cli, ["--config", str(loaded), "search", "--since", "1d", "--until", "2d"])
    assert r.exit_code == 2 and "--since" in r.stderr and "is after --until" in r.stderr


def test_refresh_note_after_recent_shipping(loaded):  # noqa: F811
    state = loaded.parent / "state"
    state.mkdir(exist_ok=True)
    (state / "status.json").write_bytes(
        orjson.dumps({"pid": 1, "updated": time.time(), "last_shipped_at": time.time() - 1})
    )
    r = CliRunner().invoke(cli, ["--config", str(loaded), "search", "--user", "nobody"])
    assert (
        "note: the daemon shipped events 1 s ago; the index makes them searchable when it refreshes (every 5s)"
        in r.stderr
    )
    (state / "status.json").write_bytes(
        orjson.dumps({"pid": 1, "updated": time.time(), "last_shipped_at": time.time() - 60})
    )
    assert "refreshes" not in CliRunner().invoke(cli, ["--config", str(loaded), "search"]).stderr


def test_one_vocabulary(loaded):  # noqa: F811
    def run(*args):
        return CliRunner().invoke(cli, ["--config", str(loaded), *args])

    lower = run("search", "--event", "interaction.signin.submit", "--format", "ndjson", "--limit", "100")
    assert lower.exit_code == 0 and len(lower.stdout.splitlines()) == 35
    assert len(run("search", "--event", "interaction.SIGNIN.*", "--limit", "100").stdout.splitlines()) == 35
    r = run("top", "ips", "--limit", "2", "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 2
    r = run("top", "ips", "--size", "1", "--format", "json")  # the old name still works, said once
    assert len(json.loads(r.stdout)) == 1 and "--size is now --limit" in r.stderr
    assert "--size" not in run("top", "--help").stdout
    helps = " ".join(run("search", "--help").stdout.split())
    assert "User id, username or email" in helps and "Application id or name" in helps
    assert "--user" not in run("user", "--help").stdout.split("Options:")[1]
    r = run("top", "countries", "--since", "30d")
    assert r.exit_code == 1
    assert "hint: none of the 39 matching events has source.geo.country_iso_code" in r.stderr
    assert "self-hosted rows have none" in r.stderr


def test_a_name_finds_every_event_of_its_user(loaded, es_target):  # noqa: F811
    """bob's rows carry only his id; one webhook delivery tells his username."""
    delivery = {
        "hookId": "h1",
        "event": "PostSignIn",
        "createdAt": NOW.isoformat(),
        "sessionId": "s1",
        "userAgent": "UA/1",
        "userId": "bob",
        "user": {"id": "bob", "username": "Bobby", "primaryEmail": "bob@example.com"},
        "application": {"id": "ios", "name": "iOS app"},
    }
    body = orjson.dumps(delivery)
    d = Normalizer().record(orjson.loads(record_line(body, delivery)))
    es = es_target.client()
    es.index(
        index=IndexNamer(es_target.prefix, "default")(d.epoch_ms), id=d.id, document=d.body, refresh=True
    )
    r = CliRunner().invoke(
        cli, ["--config", str(loaded), "search", "--user", "bobby", "--since", "60d", "--format", "ndjson"]
    )
    assert r.exit_code == 0, r.output
    found = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(found) == 9  # his 8 rows (ids only) and the delivery
    assert sum(1 for x in found if x["user"].get("name") == "Bobby") == 1
    assert (
        len(
            CliRunner()
            .invoke(cli, ["--config", str(loaded), "user", "BOBBY", "--since", "60d"])
            .stdout.splitlines()
        )
        == 9
    )


def test_tail_waits_for_a_lost_cluster(tmp_path):
    from tests.es_server import EsTestServer

    srv = EsTestServer().start()
    port = int(srv.url.rsplit(":", 1)[1])
    srv.stop()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\nhosts=['{srv.url}']\n"
    )
    back: list[EsTestServer] = []
    timer = threading.Timer(1.5, lambda: back.append(EsTestServer(port=port).start()))
    timer.start()
    try:
        r = CliRunner().invoke(cli, ["--config", str(cfg), "tail", "--interval", "0.2", "--max-polls", "6"])
    finally:
        timer.join()
        for s in back:
            s.stop()
    assert r.exit_code == 0, r.output
    assert "tail: cluster: cannot connect" in r.stderr and "retrying in" in r.stderr
    assert "tail: the cluster answers again" in r.stderr
