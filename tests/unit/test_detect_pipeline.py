"""Detections inside the pipeline: signals read from framed blocks, alerts delivered off the
pipeline's thread with retries, state that survives a restart without double alerts."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generate import lines as generated_lines
from shipper.clock import ManualClock
from shipper.detect.deliver import Delivery, DeliveryError, Refused, notification, signature
from shipper.detect.rules import Detector
from shipper.detect.signals import read, relevant
from shipper.detect.stage import DetectStage
from shipper.normalize import Normalizer
from shipper.normalize.document import Document
from shipper.normalize.loop import encode
from shipper.records import Segment
from shipper.sinks.elasticsearch.framing import BulkFramer
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.sinks.local import NdjsonFramer
from tests.unit.test_detect import T0, failed_password

FRAMERS = [BulkFramer(IndexNamer("logto-audit", "default")), NdjsonFramer()]
NORMALIZER = Normalizer(native=None)


def line(body_ms: tuple[dict[str, Any], int]) -> bytes:
    """A Logto row (as the file input reads it) of a normalized body's event."""
    body, ms = body_ms
    p = body["logto"]["payload"]
    return orjson.dumps(
        {
            "tenantId": "default",
            "id": body["event"]["id"],
            "key": body["event"]["action"],
            "createdAt": ms,
            "payload": p,
        }
    )


def test_the_members_rules_read_come_before_those_a_signal_skips():
    """``scan`` parses a document only up to the first top-level member named in
    ``AFTER_READ``: the field tables must write every member rules read before all of those,
    and none of those names may be a key inside what rules read."""
    from shipper.detect.signals import AFTER_READ
    from shipper.normalize.fields import AUDIT, WEBHOOK

    read_by_rules = {"@timestamp", "event", "error", "organization", "user", "source"}
    for table in (AUDIT, WEBHOOK):
        tops = [f.path.split(".")[0] for f in table]
        assert set(tops) <= read_by_rules | set(AFTER_READ), set(tops) - read_by_rules - set(AFTER_READ)
        last_read = max(i for i, t in enumerate(tops) if t in read_by_rules)
        assert all(t in read_by_rules for t in tops[: last_read + 1])
        nested = {
            part for f in table if f.path.split(".")[0] in read_by_rules for part in f.path.split(".")[1:]
        }
        assert not nested & set(AFTER_READ)


@pytest.mark.parametrize("frame", FRAMERS, ids=["bulk", "ndjson"])
def test_scan_finds_exactly_the_relevant_documents(frame):
    """What ``scan`` returns equals parsing every document and keeping the relevant ones."""
    raw = [x.rstrip(b"\n") for x in generated_lines(4000, seed=21)]
    raw += [line(failed_password(T0 + i)) for i in range(30)]
    _, _, _, docs, _, _, signals = encode(raw, NORMALIZER.line, frame, detect=True)
    every = []
    for x in raw:
        d = NORMALIZER.line(x)
        if isinstance(d, Document):
            s = read(orjson.loads(orjson.dumps(d.body)), d.epoch_ms, d.id)
            if relevant(s):
                every.append(s)
    assert signals == every and sum(s.failed for s in signals) >= 30
    assert len(signals) < len(docs)  # most documents are not looked at


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["fail", "ok", "code", "token", "lock"]), max_size=40))
def test_scan_agrees_with_parsing_on_any_mix(kinds):
    lines = []
    for i, k in enumerate(kinds):
        ms = T0 + i
        if k == "fail":
            lines.append(line(failed_password(ms, f"u{i % 3}")))
        else:
            key, result, extra = {
                "ok": ("Interaction.SignIn.Submit", "Success", {"userId": "u1"}),
                "code": (
                    "Interaction.SignIn.Verification.EmailVerificationCode.Create",
                    "Success",
                    {"email": f"e{i}@x.io"},
                ),
                "token": ("ExchangeTokenBy.RefreshToken", "Success", {"userId": "u1"}),
                "lock": ("Interaction.SignIn.Identifier.Password.Submit", "Error", {"error": {"code": "x"}}),
            }[k]
            lines.append(
                orjson.dumps(
                    {
                        "tenantId": "default",
                        "id": f"e{i}",
                        "key": key,
                        "createdAt": ms,
                        "payload": {"result": result, "ip": "198.51.100.4", **extra},
                    }
                )
            )
    for frame in FRAMERS:
        block = encode(lines, NORMALIZER.line, frame, detect=True)
        want = [
            s
            for x in lines
            if relevant(
                s := read(NORMALIZER.line(x).body, NORMALIZER.line(x).epoch_ms, NORMALIZER.line(x).id)
            )
        ]  # type: ignore[union-attr]
        assert block[6] == want


class FakeTarget:
    """A target that fails ``fail`` times (``DeliveryError``), then records what it gets."""

    def __init__(self, name: str, fail: int = 0, refuse: bool = False, known: set[str] | None = None) -> None:
        self.name, self.fail, self.refuse = name, fail, refuse
        self.got: list[tuple[str, bool, dict[str, Any]]] = []
        self.known = known if known is not None else set()

    def send(self, doc: dict[str, Any], alert_id: str, index: str, first: bool) -> bool:
        if self.refuse:
            raise Refused("HTTP 400")
        if self.fail:
            self.fail -= 1
            raise DeliveryError("HTTP 503")
        self.got.append((alert_id, first, doc))
        new = alert_id not in self.known
        self.known.add(alert_id)
        return new or not first


def test_delivery_retries_with_backoff_and_never_blocks():
    """The index fails twice (the notifier waits for it, up to INDEX_GRACE), then the notifier
    fails three times: tried again after 1, 2, 4 s; each target gets the alert once."""
    clock = ManualClock()
    index, hook = FakeTarget("index", fail=2), FakeTarget("hook", fail=3)
    d = Delivery(index, [hook], clock, max_attempts=10)
    d.add("a1", "ix", {"message": "m"})
    t0, waits = clock.now, []
    while d.pending:
        waits.append(d.pump())
        clock.advance(waits[-1] if d.pending else 0)
    assert waits == [0.5, 0.5, 1.0, 2.0, 4.0, float("inf")]
    assert index.got == [("a1", True, {"message": "m"})] and [g[0] for g in hook.got] == ["a1"]
    assert clock.now - t0 == 8.0


def test_a_dead_index_delays_notifiers_by_the_grace_only():
    clock = ManualClock()
    index, hook = FakeTarget("index", fail=10**6), FakeTarget("hook")
    d = Delivery(index, [hook], clock)
    d.add("a1", "ix", {"message": "m"})
    t0 = clock.now
    while not (wait := d.pump()) or not hook.got:
        clock.advance(wait)
    assert clock.now - t0 == 3.0 and d.pending == 1  # told after 3 s; the index is still retried


def test_a_notifier_that_keeps_failing_gives_up_and_a_refusal_is_final():
    clock = ManualClock()
    dead, refusing = FakeTarget("dead", fail=10**6), FakeTarget("refusing", refuse=True)
    d = Delivery(None, [dead, refusing], clock, max_attempts=3)
    d.add("a1", "", {"message": "m"})
    for _ in range(5):
        clock.advance(d.pump())
    assert d.pending == 0 and dead.got == [] and refusing.got == []


def test_a_replayed_alert_is_not_told_again_but_a_restored_one_is():
    clock = ManualClock()
    index, hook = FakeTarget("index", known={"a1", "a2"}), FakeTarget("hook")
    d = Delivery(index, [hook], clock)
    d.add("a1", "ix", {"message": "replay"})  # raised again after a crash: the index has it
    d.restore(
        [{"id": "a2", "index": "ix", "doc": {"message": "was pending"}, "indexed": False, "told": [False]}]
    )
    d.pump()
    assert [g[0] for g in hook.got] == ["a2"]


def test_updates_reindex_without_notifying():
    clock = ManualClock()
    index, hook = FakeTarget("index"), FakeTarget("hook")
    d = Delivery(index, [hook], clock)
    d.add("a1", "ix", {"count": 10})
    d.pump()
    d.update("a1", "ix", {"count": 15})
    d.pump()
    assert [(g[1], g[2]["count"]) for g in index.got] == [(True, 10), (False, 15)]
    assert len(hook.got) == 1


def test_notification_body_and_signature():
    doc = {"message": "brute_force_user: user.id u1: 10 events"}
    body = notification(doc)
    assert orjson.loads(body) == {"text": "logto-shipper alert: " + doc["message"], "alert": doc}
    assert signature(b"k", body) == hmac.new(b"k", body, hashlib.sha256).hexdigest()


def segment_of(bodies: list[tuple[dict[str, Any], int]]) -> Segment:
    data, crc, size, docs, _, _, signals = encode(
        [line(b) for b in bodies], NORMALIZER.line, FRAMERS[0], detect=True
    )
    return Segment(data, docs, size, crc, signals)


def stage(tmp_path, index: FakeTarget, hook: FakeTarget) -> DetectStage:
    return DetectStage(
        Detector(),
        Delivery(index, [hook], ManualClock(), journal=tmp_path / "alerts-delivered.log"),
        lambda ms: "ix",
        tmp_path / "detect.json",
        ManualClock(),
    )


def test_a_restart_neither_loses_nor_repeats_an_alert(tmp_path):
    """The state is written before each checkpoint; whatever the inputs re-read after a crash
    (events seen before it included) raises no second alert, and one raised but not yet
    delivered is delivered after the restart."""
    known: set[str] = set()
    attack = [failed_password(T0 + i * 1000, "victim") for i in range(14)]
    index, hook = FakeTarget("index", known=known), FakeTarget("hook")
    s = stage(tmp_path, index, hook)
    s.segment(segment_of(attack[:6]), "f")
    assert s.save()  # a checkpoint after 6 events
    s.segment(segment_of(attack[6:12]), "f")  # the 10th fires; not delivered yet: then kill -9
    assert s.delivery.pending == 1 and index.got == []
    # Restart from the checkpoint: events 6.. are read again.
    index2, hook2 = FakeTarget("index", known=known), FakeTarget("hook")
    s2 = stage(tmp_path, index2, hook2)
    s2.segment(segment_of(attack[6:]), "f")
    s2.delivery.pump()
    assert len(hook2.got) == 1 and [g[0] for g in index2.got] == [hook2.got[0][0]]
    assert s2.save()
    # Another crash after delivery, state written: a third run re-reading all of it fires nothing.
    index3, hook3 = FakeTarget("index", known=known), FakeTarget("hook")
    s3 = stage(tmp_path, index3, hook3)
    s3.segment(segment_of(attack), "f")
    s3.delivery.pump()
    # (the signals logged since the snapshot are replayed: the alert is raised again, and the
    # journal says the index and the hook have it)
    assert hook3.got == [] and index3.got == []


def test_a_restart_after_the_alert_was_saved_undelivered_delivers_it(tmp_path):
    index, hook = FakeTarget("index"), FakeTarget("hook")
    s = stage(tmp_path, index, hook)
    s.segment(segment_of([failed_password(T0 + i * 1000, "victim") for i in range(10)]), "f")
    assert s.save()  # written with the alert pending; then kill -9
    index2, hook2 = FakeTarget("index", known=set()), FakeTarget("hook")
    s2 = stage(tmp_path, index2, hook2)
    s2.delivery.pump()
    assert len(index2.got) == 1 and len(hook2.got) == 1


def test_corrupt_state_is_moved_aside_and_detection_goes_on(tmp_path, caplog):
    (tmp_path / "detect.json").write_bytes(b'{"version": 1, "detector": ')
    index, hook = FakeTarget("index"), FakeTarget("hook")
    s = stage(tmp_path, index, hook)
    assert any(p.name.startswith("detect.json.corrupt-") for p in tmp_path.iterdir())
    assert "detection state" in caplog.text and "unusable" in caplog.text
    s.segment(segment_of([failed_password(T0 + i * 1000, "victim") for i in range(10)]), "f")
    s.delivery.pump()
    assert len(hook.got) == 1


def test_a_state_that_cannot_be_written_holds_the_checkpoint(tmp_path):
    from shipper.pipeline.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path, 0.0)
    s = stage(tmp_path / "gone", FakeTarget("index"), FakeTarget("hook"))  # its directory does not exist
    store.before_write.append(s.save)
    s.segment(segment_of([failed_password(T0, "victim")]), "f")
    store.stage("f", offset=10)
    assert store.flush(force=True) is False and not (tmp_path / "registry.json").exists()
    (tmp_path / "gone").mkdir()
    assert store.flush(force=True) is True and list((tmp_path / "gone").glob("detect-*.wal"))


def test_the_journal_keeps_a_told_alert_from_being_told_again(tmp_path):
    """A crash after a notification, before the state recorded it: the alert raised again (or
    restored as undelivered) is not told twice; a notifier added since is told."""
    journal = tmp_path / "alerts-delivered.log"
    hook = FakeTarget("hook")
    d = Delivery(None, [hook], ManualClock(), journal=journal)
    d.add("a1", "", {"message": "m"})
    d.pump()
    assert journal.read_text() == "a1\t0\n"
    hook2, other = FakeTarget("hook"), FakeTarget("other")
    d2 = Delivery(None, [hook2, other], ManualClock(), journal=journal)
    d2.add("a1", "", {"message": "m"})  # raised again from re-read events
    d2.restore([{"id": "a1", "index": "", "doc": {"message": "m"}, "indexed": False, "told": [False]}])
    d2.pump()
    assert hook2.got == [] and [g[0] for g in other.got] == ["a1"]
    assert journal.read_text() == "a1\t0\na1\t1\n"


def test_a_log_cut_short_by_a_crash_replays_what_is_whole(tmp_path, caplog):
    index, hook = FakeTarget("index"), FakeTarget("hook")
    s = stage(tmp_path, index, hook)
    s.segment(segment_of([failed_password(T0 + i * 1000, "victim") for i in range(9)]), "f")
    assert s.save()
    (wal,) = tmp_path.glob("detect-*.wal")
    with open(wal, "ab") as fh:
        fh.write(b'[1764583210000,"half')  # the daemon died while writing
    s2 = stage(tmp_path, FakeTarget("index"), hook2 := FakeTarget("hook"))
    assert "1 unreadable lines skipped" in caplog.text
    s2.segment(segment_of([failed_password(T0 + 9_500, "victim")]), "f")  # the 10th
    s2.delivery.pump()
    assert len(hook2.got) == 1 and hook.got == []
    assert not wal.exists() and list(tmp_path.glob("detect-*.wal")) == []  # folded into the snapshot


def test_logtos_webhook_signals_alert_through_the_pipeline():
    """Deliveries as the webhook input spools them (Identifier.Lockout, Message.RateLimited,
    Grant.LimitExceeded), normalized and framed like any record: each raises its rule once."""
    import json

    from shipper.sources.webhook import record_line
    from tests.unit.test_webhook_records import body_for

    lines = []
    for event in ("Identifier.Lockout", "Message.RateLimited", "Grant.LimitExceeded"):
        body = body_for(event)
        raw = json.dumps(body, separators=(",", ":")).encode()
        lines.append(record_line(raw, body))
    *_, signals = encode(lines, NORMALIZER.line, FRAMERS[0], detect=True)
    det = Detector()
    fired = [(a.rule.id, a.entity) for s in signals for a in det.observe(s)]
    assert fired == [("lockout", "a@example.com"), ("rate_limited", "203.0.113.9"), ("grant_limit", "u1")]


def test_close_delivers_what_waits_for_a_retry_and_the_final_counts():
    """At shutdown (``run --once`` ending) an alert waiting for its retry, and the count that
    grew since, are tried at once, not left for a next run."""
    clock = ManualClock()
    index, hook = FakeTarget("index", fail=1), FakeTarget("hook")
    d = Delivery(index, [hook], clock)
    d.start()
    d.add("a1", "ix", {"count": 10})
    deadline = time.monotonic() + 5
    while index.fail and time.monotonic() < deadline:  # the first try failed: a retry is due later
        time.sleep(0.01)
    d.update("a1", "ix", {"count": 25})
    d.close()
    assert index.got and index.got[-1][2] == {"count": 25} and len(hook.got) == 1 and d.pending == 0


def test_a_count_grown_while_the_alert_is_being_created_is_sent_after_it():
    clock = ManualClock()
    d: Delivery

    class Racing(FakeTarget):
        def send(self, doc: dict[str, Any], alert_id: str, index: str, first: bool) -> bool:
            if first:
                d.update(alert_id, index, {"count": 25})  # the stage, while the create is in flight
            return super().send(doc, alert_id, index, first)

    index = Racing("index")
    d = Delivery(index, [], clock)
    d.add("a1", "ix", {"count": 10})
    d.pump()
    d.pump()
    assert [(g[1], g[2]["count"]) for g in index.got] == [(True, 10), (False, 25)] and d.pending == 0


def test_the_daemon_remembers_the_ids_of_every_event_it_may_read_past_the_checkpoint(tmp_path):
    # After a crash, the detection log replays signals of events the inputs then read again: the
    # ids seen must cover all that can be read past the checkpoint, or those are counted twice.
    from shipper.configfile import parse_config
    from shipper.pipeline.runner import Runner
    from shipper.wiring import build_runner

    out = {"type": "elasticsearch", "batch_max_docs": 10_000, "max_in_flight": 4, "setup_on_start": False}
    cfg = parse_config(
        {
            "state": {"dir": str(tmp_path / "state")},
            "inputs": [{"type": "file", "paths": [str(tmp_path / "*.jsonl")]}],
            "output": out,
            "pipeline": {"workers": 0},
        },
        "test",
        env={},
    )
    runner = build_runner(cfg)
    try:
        (stage,) = runner.stages
        assert isinstance(stage, DetectStage)
        assert stage.seen_keep == Runner.unacked_bound(runner.limits, 4) == 90_000
    finally:
        stage.delivery.close(timeout=0)
        runner.sink.close()
        for src in runner.sources:
            src.close()


def test_window_state_is_kept_while_any_input_may_still_count_it_then_forgotten(tmp_path):
    """Two inputs, one backfilling last week while the other is live: the backfill's windows
    stay (its next events still count them), and once it has been idle for STREAM_IDLE_S they
    go, as every key out of the live input's reach does."""
    from shipper.detect.stage import STREAM_IDLE_S

    clock = ManualClock()
    delivery = Delivery(FakeTarget("index"), [FakeTarget("hook")], clock, journal=tmp_path / "j.log")
    s = DetectStage(Detector(), delivery, lambda ms: "ix", tmp_path / "detect.json", clock, update_every=0)
    week = 7 * 24 * 3_600_000
    old = [failed_password(T0 + i * 1000, "victim", ip="192.0.2.66") for i in range(10)]
    s.segment(segment_of(old[:5]), "backfill")
    s.segment(segment_of([failed_password(T0 + week, "someone", ip="198.51.100.1")]), "live")
    s.segment(segment_of(old[5:]), "backfill")  # the 10th failure within the window: an alert
    assert [r["doc"]["rule"]["id"] for r in delivery.records()] == ["brute_force_user"]
    tracked = s.detector.tracked
    clock.advance(STREAM_IDLE_S + 1)
    s.segment(segment_of([failed_password(T0 + week + 1000, "someone", ip="198.51.100.1")]), "live")
    assert s.detector.tracked < tracked
    windows = s.detector._windows["brute_force_user"]
    assert list(windows.recent("victim", T0 + 10_000)) == [] and list(windows.recent("someone", T0 + week))
