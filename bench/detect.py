"""Detections measured through the installed daemon: precision and recall, latency, memory, kill -9.

    python -m bench.detect [--exe logto-shipper] [--benign 200000] [--flood 1000000]
                           [--parts scenarios latency flood kill]

- ``scenarios``: a day of ordinary traffic (``bench.generate``: sign-ins, token exchanges,
  ordinary single failures; plus typing mistakes: 1-3 failed passwords, then a sign-in) with
  five attacks of every rule mixed in at random times; ``run --once`` ships it with a webhook
  notifier pointed at this process. Every scenario must fire its rule exactly once, the
  ordinary stream nothing: recall = scenarios whose rule fired / scenarios, precision = alerts
  about an attack / alerts (an attack may also fire a second rule, e.g. an enumeration is also
  a spray: counted apart, as "also fired", neither a miss nor a false alarm).
- ``latency``: the daemon follows a file; for each of 20 brute-force attacks, 9 failures are
  appended, then the 10th: the time from that write to the notification's arrival.
- ``flood``: ``--flood`` failed sign-ins from as many distinct source IPs (each for another
  identifier), ``run --once`` with detection on and, in the same invocation, off: CPU, wall
  and the largest process's peak RSS, and the keys the state holds (at most ``max_keys`` per
  rule).
- ``kill``: ``kill -9`` in the middle of an attack's window (6 of 12 failures shipped), restart,
  the rest: one alert; and ``kill -9`` right after an alert was told, restart: still one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.generate import records
from tests.receiver import Receiver

DAY0 = datetime(2026, 11, 30, tzinfo=UTC)
T0 = int(DAY0.timestamp() * 1000)
MINUTE = 60_000
HOMES = {"DE": (52.52, 13.40), "BR": (-23.55, -46.63), "AU": (-33.87, 151.21), "US": (37.77, -122.42)}


def config(work: Path, log: Path, hook: str, extra: str = "") -> Path:
    p = work / "shipper.toml"
    p.write_text(
        f'[state]\ndir = "{work / "state"}"\n[[inputs]]\ntype = "file"\npaths = ["{log}"]\n'
        f'[output]\ntype = "file"\npath = "{work / "out.ndjson"}"\n[index]\nship_expired = true\n'
        f'[[detect.notify]]\ntype = "webhook"\nurl = "{hook}"\n{extra}'
    )
    return p


# -- rows shaped like Logto's (the Management API's shape, as the file input reads it) ------


class Rows:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def row(self, key: str, ms: int, result: str, ip: str, **payload: Any) -> dict[str, Any]:
        self.n += 1
        p = {"key": key, "result": result, "ip": ip, "userAgent": "Mozilla/5.0", **payload}
        return {"tenantId": "default", "id": f"sc{self.n:09d}", "key": key, "createdAt": ms, "payload": p}

    def fail(
        self, ms: int, ip: str, user: str | None = None, ident: str | None = None, code: str = ""
    ) -> Any:
        error = {"code": code or "session.invalid_credentials", "message": "Invalid credentials."}
        if user:
            return self.row(
                "Interaction.SignIn.Identifier.Password.Submit", ms, "Error", ip, userId=user, error=error
            )
        return self.row(
            "Interaction.SignIn.Verification.Password.Submit",
            ms,
            "Error",
            ip,
            identifier={"type": "email", "value": ident},
            error=error,
        )

    def ok(self, ms: int, ip: str, user: str, country: str | None = None) -> Any:
        extra: dict[str, Any] = {}
        if country:
            lat, lon = HOMES[country]
            extra["signInContext"] = {"country": country, "latitude": str(lat), "longitude": str(lon)}
        return self.row("Interaction.SignIn.Submit", ms, "Success", ip, userId=user, **extra)

    def ip(self) -> str:
        r = self.rng
        return f"{r.randrange(11, 223)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"


def scenarios(rows: Rows, per_rule: int = 5) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(rule, entity, rows) of every attack; times spread over the day, a few minutes each."""
    out: list[tuple[str, str, list[dict[str, Any]]]] = []
    r = rows.rng

    def at() -> int:
        return T0 + r.randrange(2 * 60, 22 * 60) * MINUTE

    for k in range(per_rule):
        t, ip, user = at(), rows.ip(), f"victim{k}"
        out.append(("brute_force_user", user, [rows.fail(t + i * 8000, ip, user) for i in range(14)]))
        t, ip = at(), rows.ip()
        out.append(
            (
                "password_spray_ip",
                ip,
                [rows.fail(t + i * 20_000, ip, ident=f"sprayed{k}.{i}@x.io") for i in range(14)],
            )
        )
        t, ip = at(), rows.ip()
        code = "user.user_not_exist"
        enum = [rows.fail(t + i * 9000, ip, ident=f"guess{k}.{i}@x.io", code=code) for i in range(25)]
        out.append(("enumeration_ip", ip, enum))
        t, ip = at(), rows.ip()
        key = "Interaction.SignIn.Verification.PhoneVerificationCode.Create"
        flood = [rows.row(key, t + i * 10_000, "Success", ip, phone="+15550100001") for i in range(25)]
        out.append(("verification_flood", ip, flood))
        t, ip = at(), rows.ip()
        pump = [rows.row(key, t + i * 15_000, "Success", ip, phone=f"+2376{k:02d}{i:05d}") for i in range(12)]
        out.append(("verification_pumping", ip, pump))
        t, ip, user = at(), rows.ip(), f"taken{k}"
        fails = [rows.fail(t + i * 10_000, ip, user) for i in range(6)]
        out.append(("success_after_failures", user, [*fails, rows.ok(t + 70_000, ip, user)]))
        t, user = at(), f"locked{k}"
        lock = rows.row("TriggerHook.Identifier.Lockout", t, "Success", rows.ip(), userId=user)
        out.append(("lockout", user, [lock]))
        t, user, ip = at(), f"traveller{k}", rows.ip()
        home = [rows.ok(T0 + i * 30 * MINUTE, ip, user, "DE") for i in range(3)]
        out.append(
            ("new_country_user", user, [*home, rows.ok(max(t, T0 + 100 * MINUTE), rows.ip(), user, "US")])
        )
        t, user = at(), f"teleported{k}"
        # two sign-ins from the same country far apart: only the speed is wrong, not the country
        jump = [
            rows.row(
                "Interaction.SignIn.Submit",
                t,
                "Success",
                rows.ip(),
                userId=user,
                signInContext=geo("US", 40.71, -74.0),
            ),
            rows.row(
                "Interaction.SignIn.Submit",
                t + 20 * MINUTE,
                "Success",
                rows.ip(),
                userId=user,
                signInContext=geo("US", 37.77, -122.42),
            ),
        ]
        out.append(("impossible_travel", user, jump))
    return out


def geo(country: str, lat: float, lon: float) -> dict[str, str]:
    return {"country": country, "latitude": str(lat), "longitude": str(lon)}


def typos(rows: Rows, n: int) -> Iterator[dict[str, Any]]:
    """Ordinary mistakes: 1-3 wrong passwords, then a sign-in, a few seconds apart."""
    r = rows.rng
    for k in range(n):
        t, ip, user = T0 + r.randrange(24 * 60) * MINUTE, rows.ip(), f"typist{k}"
        for i in range(r.randint(1, 3)):
            yield rows.fail(t + i * 4000, ip, user)
        yield rows.ok(t + 15_000, ip, user)


def day(benign: int, seed: int, path: Path) -> list[tuple[str, str, list[dict[str, Any]]]]:
    rows = Rows(seed)
    attacks = scenarios(rows)
    mixed: list[dict[str, Any]] = []
    for rec in records(benign, seed=seed, start=DAY0, span=timedelta(days=1)):
        if "created_at" in rec:  # one shape for all, as the Management API gives them
            payload = rec["payload"] if isinstance(rec["payload"], dict) else orjson.loads(rec["payload"])
            created = int(datetime.fromisoformat(rec["created_at"]).timestamp() * 1000)
            rec = {
                "tenantId": "default",
                "id": rec["id"],
                "key": rec["key"],
                "payload": payload,
                "createdAt": created,
            }
        mixed.append(rec)
    mixed += list(typos(rows, 300))
    mixed += [x for _, _, rs in attacks for x in rs]
    mixed.sort(key=lambda x: x["createdAt"])
    with open(path, "wb") as fh:
        fh.write(b"".join(orjson.dumps(x) + b"\n" for x in mixed))
    return attacks


def run_once(exe: str, cfg: Path, timeout: float = 900) -> dict[str, float]:
    """``run --once``: wall, CPU and peak RSS of the process tree (workers included; each
    process's peak, summed: read from /proc while it runs)."""
    from bench.run import tree_cpu_rss

    t = time.monotonic()
    proc = subprocess.Popen(
        [exe, "--config", str(cfg), "run", "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    cpu = rss = 0.0
    while proc.poll() is None and time.monotonic() - t < timeout:
        c, r = tree_cpu_rss(proc.pid)
        cpu, rss = max(cpu, c), max(rss, r)
        time.sleep(0.1)
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"run --once exited {proc.returncode}: {err.decode()[-2000:]}")
    return {"wall_s": time.monotonic() - t, "cpu_s": cpu, "peak_rss_mb": rss}


def part_scenarios(exe: str, work: Path, benign: int) -> dict[str, Any]:
    hook = Receiver()
    try:
        attacks = day(benign, 11, work / "day.jsonl")
        cfg = config(work, work / "day.jsonl", hook.url)
        m = run_once(exe, cfg)
        time.sleep(0.5)
        fired = Counter(hook.alerts())
    finally:
        hook.close()
    entities = {e for _, e, _ in attacks}
    wanted = {(rule, e) for rule, e, _ in attacks}
    once = sum(1 for w in wanted if fired[w] == 1)
    hit = sum(1 for w in wanted if fired[w] >= 1)
    alarms = sum(fired.values())
    false = sum(n for (rule, e), n in fired.items() if e not in entities)
    also = sum(n for (rule, e), n in fired.items() if e in entities and (rule, e) not in wanted)
    per_rule = Counter(rule for rule, _, _ in attacks)
    got_rule = Counter(rule for (rule, e) in fired if (rule, e) in wanted)
    return {
        "records": benign + sum(len(r) for _, _, r in attacks),
        "scenarios": len(wanted),
        "fired_once": once,
        "recall": hit / len(wanted),
        "precision": (alarms - false) / alarms if alarms else 0.0,
        "false_alarms": false,
        "also_fired": also,
        "repeats": sum(n - 1 for w, n in fired.items() if w in wanted and n > 1),
        "per_rule": {r: f"{got_rule[r]}/{n}" for r, n in sorted(per_rule.items())},
        "false_examples": [w for w in fired if w[1] not in entities][:5],
        **m,
    }


def start(exe: str, cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [exe, "--config", str(cfg), "run"],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=60)


def wait_for(cond: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def part_latency(exe: str, work: Path, attacks: int = 20) -> dict[str, Any]:
    hook, rows = Receiver(), Rows(5)
    log = work / "live.jsonl"
    log.write_bytes(b"")
    proc = start(exe, config(work, log, hook.url), work / "daemon.log")
    lat: list[float] = []
    try:
        time.sleep(2.0)
        now = int(time.time() * 1000)
        with open(log, "ab", buffering=0) as fh:
            for k in range(attacks):
                user, ip = f"live{k}", rows.ip()
                fh.write(b"".join(orjson.dumps(rows.fail(now + i, ip, user)) + b"\n" for i in range(9)))
                time.sleep(0.3)
                fh.write(orjson.dumps(rows.fail(now + 9, ip, user)) + b"\n")
                t = time.time()
                if not wait_for(lambda u=user: ("brute_force_user", u) in hook.alerts(), 30):
                    raise SystemExit(f"no alert for {user} within 30 s; see {work / 'daemon.log'}")
                lat.append(
                    next(at for at, a in hook.timed() if a["logto_shipper"]["alert"]["entity"] == user) - t
                )
    finally:
        stop(proc)
        hook.close()
    lat.sort()
    return {
        "attacks": attacks,
        "p50_s": lat[len(lat) // 2],
        "p95_s": lat[min(len(lat) - 1, int(len(lat) * 0.95))],
        "max_s": lat[-1],
    }


def part_flood(exe: str, work: Path, n: int) -> dict[str, Any]:
    rows = Rows(9)
    log = work / "flood.jsonl"
    with open(log, "wb") as fh:
        chunk = []
        for i in range(n):
            ip = f"{10 + (i >> 24) % 200}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            chunk.append(orjson.dumps(rows.fail(T0 + i, ip, ident=f"who{i}@x.io")) + b"\n")
            if len(chunk) == 50_000:
                fh.write(b"".join(chunk))
                chunk.clear()
        fh.write(b"".join(chunk))
    hook = Receiver()
    out: dict[str, Any] = {"records": n}
    try:
        for mode in ("on", "off"):
            w = work / mode
            w.mkdir()
            cfg = config(w, log, hook.url, f"[detect]\nenabled = {'true' if mode == 'on' else 'false'}\n")
            out[mode] = run_once(exe, cfg)
        state = orjson.loads((work / "on" / "state" / "detect.json").read_bytes())
        out["keys_per_rule"] = {r: len(k) for r, k in state["detector"]["windows"].items() if k}
        out["seen_ids"] = len(state["seen"])
        out["state_mb"] = (work / "on" / "state" / "detect.json").stat().st_size / 1e6
        out["alerts"] = len(hook.got)
    finally:
        hook.close()
    return out


def part_kill(exe: str, work: Path) -> dict[str, Any]:
    hook, rows = Receiver(), Rows(3)
    log = work / "kill.jsonl"
    log.write_bytes(b"")
    cfg = config(work, log, hook.url)
    now = int(time.time() * 1000)
    out: dict[str, Any] = {}
    try:
        # 1. killed in the middle of the window
        proc = start(exe, cfg, work / "daemon.log")
        time.sleep(2.0)
        with open(log, "ab") as fh:
            fh.write(
                b"".join(
                    orjson.dumps(rows.fail(now + i, "198.51.100.7", "midwindow")) + b"\n" for i in range(6)
                )
            )
        time.sleep(2.5)  # shipped and checkpointed
        stop(proc, signal.SIGKILL)
        with open(log, "ab") as fh:
            fh.write(
                b"".join(
                    orjson.dumps(rows.fail(now + 6 + i, "198.51.100.7", "midwindow")) + b"\n"
                    for i in range(6)
                )
            )
        proc = start(exe, cfg, work / "daemon.log")
        wait_for(lambda: ("brute_force_user", "midwindow") in hook.alerts(), 20)
        # 2. killed right after the alert was told
        with open(log, "ab") as fh:
            fh.write(
                b"".join(
                    orjson.dumps(rows.fail(now + 20 + i, "198.51.100.8", "afterfire")) + b"\n"
                    for i in range(12)
                )
            )
        wait_for(lambda: ("brute_force_user", "afterfire") in hook.alerts(), 20)
        stop(proc, signal.SIGKILL)
        proc = start(exe, cfg, work / "daemon.log")
        time.sleep(6.0)
        stop(proc)
        fired = Counter(hook.alerts())
        out = {
            "killed mid-window": fired[("brute_force_user", "midwindow")],
            "killed after the alert": fired[("brute_force_user", "afterfire")],
        }
    finally:
        hook.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--exe", default=shutil.which("logto-shipper") or str(Path(sys.executable).parent / "logto-shipper")
    )
    ap.add_argument("--benign", type=int, default=200_000)
    ap.add_argument("--flood", type=int, default=1_000_000)
    ap.add_argument("--parts", nargs="+", default=["scenarios", "latency", "flood", "kill"])
    a = ap.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in a.parts:
            work = Path(tmp) / part
            work.mkdir()
            fn = {
                "scenarios": part_scenarios,
                "latency": part_latency,
                "flood": part_flood,
                "kill": part_kill,
            }[part]
            args: list[Any] = [a.exe, work]
            if part == "scenarios":
                args.append(a.benign)
            elif part == "flood":
                args.append(a.flood)
            results[part] = fn(*args)
            print(f"== {part}", json.dumps(results[part], indent=1, default=str), flush=True)
    return results


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
