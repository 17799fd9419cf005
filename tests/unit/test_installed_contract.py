"""What users meet first: configuration checked at load, credentials never shown, repeating
warnings rate-limited, progress reported (issue "As installed, as documented")."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.configfile import parse_config, redacted
from shipper.errors import ConfigError
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.pipeline.progress import Progress, describe_lag
from shipper.redact import dsn_secrets, one_line, redact_url, scrub, split_userinfo
from shipper.sources import Lag

FILE_IN = [{"type": "file", "paths": ["/var/log/x/*.jsonl"]}]


def es(**kw):
    return parse_config({"inputs": FILE_IN, "output": {"type": "elasticsearch", **kw}}, "t.toml")


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (["127.0.0.1:9200"], "is not a URL with scheme, host and port (e.g. http://127.0.0.1:9200)"),
        (["localhost"], "e.g. http://localhost:9200"),
        (["http://h"], "has no port"),
        (["http://h:0"], "port outside 1-65535"),
        (["http://h:70000"], "port outside 1-65535"),
        (["ftp://h:21"], "is not a URL with scheme"),
    ],
)
def test_bad_hosts_are_config_errors_naming_the_key(hosts, message):
    with pytest.raises(ConfigError) as e:
        es(hosts=hosts)
    assert "t.toml: output.hosts: hosts[0]: " in str(e.value) and message in str(e.value)
    assert "Value error" not in str(e.value)


def test_https_without_port_is_443_as_the_client_takes_it():
    assert es(hosts=["https://my.es.cloud"]).output.hosts == ["https://my.es.cloud"]


@pytest.mark.parametrize(
    "key",
    ["request_timeout", "retry_initial_backoff", "retry_max_backoff", "batch_max_wait", "drain_timeout"],
)
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_numbers_are_refused(key, value):
    with pytest.raises(ConfigError) as e:
        es(**{key: value})
    assert f"output.{key}: Input should be a finite number" in str(e.value)


def test_metrics_port_range():
    with pytest.raises(ConfigError, match="port in 1-65535"):
        parse_config({"inputs": FILE_IN, "metrics": {"listen": "127.0.0.1:99999"}}, "t")


def test_credentials_move_out_of_the_url():
    cfg = es(hosts=["https://elastic:s3cr3t-pw@es.example:9200"])
    out = cfg.output
    assert out.hosts == ["https://es.example:9200"] and out.username == "elastic"
    assert out.password is not None and out.password.get_secret_value() == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(redacted(cfg)) and "s3cr3t-pw" not in repr(cfg)
    with pytest.raises(ConfigError, match="carries credentials and so does the output"):
        es(hosts=["https://a:b@h:9200"], api_key="k")


def test_bad_dsn_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as e:
        parse_config({"inputs": [{"type": "postgres", "dsn": "hunter2-password"}]}, "t")
    assert "not a valid PostgreSQL connection string" in str(e.value)
    assert "hunter2" not in str(e.value)


def test_risky_settings_warn(tmp_path, caplog):
    cfg = es(hosts=["http://u:p@h:9200"])
    assert any("basic auth over plain http" in w for w in cfg.warnings())
    cfg = parse_config({"inputs": FILE_IN, "metrics": {"listen": "0.0.0.0:9464"}}, "t")
    assert any("reachable from other hosts" in w for w in cfg.warnings())
    assert not parse_config({"inputs": FILE_IN, "metrics": {"listen": "127.0.0.1:9464"}}, "t").warnings()
    key = tmp_path / "key"
    key.write_text("abc")
    key.chmod(0o640)
    with caplog.at_level(logging.WARNING):
        es(api_key_file=str(key))
    assert f"{key} is readable by its group (mode 0640): chmod 600 it" in caplog.text
    assert "abc" not in caplog.text


# -- redaction ---------------------------------------------------------------------------------


def test_redact_url_and_split():
    assert redact_url("https://u:p@h:9200/x") == "https://******@h:9200/x"
    assert redact_url("https://h:9200") == "https://h:9200"
    assert split_userinfo("http://u@h:1") == ("http://h:1", "u", None)
    assert split_userinfo("http://u:p:q@h:1") == ("http://h:1", "u", "p:q")


def test_dsn_secrets_cover_uri_and_keyword_forms():
    assert "pw1" in dsn_secrets("postgresql://u:pw1@h/db")
    assert "pw2" in dsn_secrets("host=h password=pw2 dbname=x")
    assert dsn_secrets("garbage pw3") == ["garbage pw3"]


@given(
    st.text(min_size=3, max_size=20).filter(lambda s: s.strip() == s and "*" not in s), st.text(max_size=40)
)
def test_scrub_never_leaves_a_secret(secret, around):
    text = around + secret + around[::-1] + secret
    assert secret not in scrub(text, [secret])


def test_one_line():
    assert one_line(ValueError("a pw9 b\nsecond")) == "a pw9 b"
    assert one_line(ValueError("a pw9 b"), ["pw9"]) == "a ****** b"
    assert one_line(KeyError()) == "KeyError"


# -- throttle, progress ----------------------------------------------------------------------


def test_throttle_once_per_interval_with_count():
    now = [0.0]
    t = Throttle(60.0, clock=lambda: now[0])
    assert t.due("k") and not t.due("k") and not t.due("k")
    assert t.due("other")
    now[0] = 61.0
    assert t.due("k") and t.suppressed("k") == " (2 more since the last report)"
    assert t.suppressed("k") == ""
    t.reset("k")
    assert t.due("k")


def test_progress_counts_since_its_start(tmp_path, caplog):
    now = [100.0]
    METRICS.inc("docs_acknowledged_total", 5)
    p = Progress(tmp_path, interval=30.0, status_every=5.0, clock=lambda: now[0])
    METRICS.inc("docs_acknowledged_total", 12)
    METRICS.inc("docs_dead_lettered_total", 2)
    METRICS.inc("records_rejected_total", 1)
    now[0] = 130.0
    lags = [Lag("pg0:default", "seconds", 3600, 120_000), Lag("file0", "bytes", 10)]
    with caplog.at_level(logging.INFO):
        p.tick(lambda: lags)
    assert "progress: 10 shipped (0/s), 1 rejected, 2 dead-lettered since start" in caplog.text
    assert (
        "pg0:default 3600 s and 120,000 rows behind" in caplog.text and "file0 10 bytes behind" in caplog.text
    )
    st_ = (tmp_path / "status.json").read_text()
    assert '"shipped":10' in st_ and '"pg0:default"' in st_
    assert p.summary().startswith("shipped 10 records, 1 rejected, 2 dead-lettered in 30.0 s")


def test_describe_lag_eta_and_states():
    assert (
        describe_lag(Lag("pg0:t", "seconds", 50, 6000), rate=100)
        == "pg0:t 50 s and 6,000 rows behind, ETA 60s"
    )
    assert describe_lag(Lag("pg0:t", "seconds", 5, 1_000_000, True)) == "pg0:t 5 s and ≥1,000,000 rows behind"
    assert describe_lag(Lag("pg0:t", "seconds", 5, unavailable="refused")) == "pg0:t unavailable (refused)"
    assert describe_lag(Lag("file0", "bytes", 0, note="no file matches x")) == "file0: no file matches x"


def test_status_write_failure_is_counted_not_raised(tmp_path):
    p = Progress(tmp_path / "missing-dir", interval=0)
    before = METRICS.get("state_write_errors_total")
    p.write_status([])
    assert METRICS.get("state_write_errors_total") == before + 1


# -- error text keeps the cluster's reason -------------------------------------------------------


def _api_error(status, body):
    from elastic_transport import ApiResponseMeta, HttpHeaders
    from elasticsearch import ApiError

    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=None)
    return ApiError(str(body), meta=meta, body=body)


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (429, {}, "HTTP 429 too_many_requests: Too Many Requests"),
        (413, "", "HTTP 413 request_entity_too_large: Request Entity Too Large"),
        (
            502,
            "<html><body>Bad gateway\n from proxy</body></html>",
            "HTTP 502 bad_gateway: <html><body>Bad gateway from proxy</body></html>",
        ),
        (
            400,
            {"error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}},
            "HTTP 400 mapper_parsing_exception: failed to parse",
        ),
        (401, {"error": "unauthorized"}, "HTTP 401 error: unauthorized"),
    ],
)
def test_describe_always_says_why(status, body, want):
    from shipper.sinks.elasticsearch.client import describe

    assert describe(_api_error(status, body)) == want


def test_unreadable_file_is_warned_once_per_interval(tmp_path, caplog, monkeypatch):
    import errno
    import os

    import shipper.sources.file.source as source_mod
    from shipper.configfile import parse_config
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.file import FileSource

    class Denied:
        def __getattr__(self, name):
            return getattr(os, name)

        def open(self, path, *a):
            raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(source_mod, "os", Denied())
    f = tmp_path / "a.jsonl"
    f.write_text("{}\n")
    cfg = parse_config({"inputs": [{"type": "file", "paths": [str(f)], "scan_interval": 0.001}]}, "t")
    src = FileSource(cfg.inputs[0], CheckpointStore(tmp_path), use_watchdog=False)  # type: ignore[arg-type]
    before = METRICS.get("file_open_errors_total")
    with caplog.at_level(logging.WARNING):
        for _ in range(30):
            src.scan()
    assert caplog.text.count("cannot open") == 1 and "Permission denied" in caplog.text
    assert METRICS.get("file_open_errors_total") == before + 30
