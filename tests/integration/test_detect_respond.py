"""``[detect.respond]``: suspending the user of an alert through Logto's Management API (the
fake one, tests/fake_logto.py): only for the named rules, never an allow-listed user, only
logged in a dry run (the default); every action taken is an alert document of its own."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from shipper.configfile import parse_config
from shipper.errors import ConfigError
from tests.fake_logto import FakeLogto
from tests.integration.harness import Pipeline
from tests.integration.test_detect_es import Receiver, attack_rows


@pytest.fixture
def logto() -> Iterator[FakeLogto]:
    f = FakeLogto().start()
    f.users["victim1"] = {"id": "victim1", "username": "victim", "isSuspended": False}
    yield f


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def shipped(tmp_path, hook: Receiver, respond: dict, n_told: int) -> list[dict]:
    (tmp_path / "logs").mkdir()
    attack_rows(tmp_path / "logs" / "a.jsonl")
    p = Pipeline(
        tmp_path, detect={"notify": [{"type": "webhook", "url": hook.url}], "respond": respond}
    ).start()
    p.pump(lambda: len(hook.got) >= n_told, timeout=20)
    assert p.stop() == 0
    return [orjson.loads(body)["alert"] for _, body in hook.got]


def creds(logto: FakeLogto) -> dict:
    return {"endpoint": logto.url, "app_id": "m2m-id", "app_secret": "m2m-secret"}


def test_a_planned_suspension_is_carried_out_and_recorded(tmp_path, logto, hook):
    told = shipped(
        tmp_path,
        hook,
        {"suspend_user": ["brute_force_user"], "dry_run": False, "management_api": creds(logto)},
        2,
    )
    assert logto.suspended == [("victim1", True)] and logto.users["victim1"]["isSuspended"]
    alert, action = sorted(told, key=lambda d: d["event"]["id"])
    assert alert["logto_shipper"]["alert"]["response"] == {
        "action": "suspend_user",
        "dry_run": False,
        "user_id": "victim1",
        "outcome": "planned",
    }
    assert action["event"]["id"] == alert["event"]["id"] + "-suspend_user"
    assert action["event"]["action"] == "suspend_user" and action["event"]["outcome"] == "success"
    assert action["logto_shipper"]["alert"]["response"]["outcome"] == "success"


def test_a_dry_run_only_logs(tmp_path, logto, hook, caplog):
    (alert,) = shipped(
        tmp_path, hook, {"suspend_user": ["brute_force_user"], "management_api": creds(logto)}, 1
    )
    assert logto.suspended == [] and "dry run: would suspend user victim1" in caplog.text
    assert alert["logto_shipper"]["alert"]["response"]["outcome"] == "dry_run"


def test_the_allow_list_and_other_rules_are_never_touched(tmp_path, logto, hook):
    respond = {
        "suspend_user": ["brute_force_user"],
        "dry_run": False,
        "allow": ["victim1"],
        "management_api": creds(logto),
    }
    (alert,) = shipped(tmp_path, hook, respond, 1)
    assert logto.suspended == []
    assert alert["logto_shipper"]["alert"]["response"] == {
        "action": "suspend_user",
        "dry_run": False,
        "user_id": "victim1",
        "outcome": "skipped",
        "reason": "allow-listed",
    }


def test_a_rule_not_named_gets_no_response(tmp_path, logto, hook):
    respond = {"suspend_user": ["success_after_failures"], "dry_run": False, "management_api": creds(logto)}
    (alert,) = shipped(tmp_path, hook, respond, 1)
    assert logto.suspended == [] and "response" not in alert["logto_shipper"]["alert"]


def test_a_real_suspension_needs_credentials():
    cfg = {
        "inputs": [{"type": "file", "paths": ["/x"]}],
        "detect": {"respond": {"suspend_user": ["brute_force_user"], "dry_run": False}},
    }
    with pytest.raises(ConfigError, match="needs Management API credentials"):
        parse_config(cfg, "t")
    cfg["detect"]["respond"]["dry_run"] = True
    parse_config(cfg, "t")  # a dry run needs none
