"""Output for humans (aligned tables, colour only on a TTY) and for scripts (json/ndjson/csv)."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from typing import Any

import click
import orjson

COLUMNS = ["time", "event", "result", "user", "application", "ip", "id"]


def get(src: dict[str, Any], path: str) -> Any:
    cur: Any = src
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def when(ts: str | None, utc: bool) -> str:
    if not ts:
        return ""
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if utc:
        return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def named(name: str | None, ident: str | None) -> str:
    """``name (id)`` when a name is known, else the id."""
    if name and ident:
        return f"{name} ({ident})"
    return ident or name or ""


def row(src: dict[str, Any], utc: bool) -> dict[str, str]:
    return {
        "time": when(get(src, "@timestamp"), utc),
        "event": get(src, "event.action") or "",
        "result": get(src, "event.outcome") or "",
        "user": named(get(src, "user.name"), get(src, "user.id")),
        "application": named(get(src, "logto.application_name"), get(src, "logto.application_id")),
        "ip": get(src, "source.ip") or get(src, "logto.ip") or "",
        "id": get(src, "event.id") or "",
    }


def is_tty() -> bool:
    return sys.stdout.isatty()


def table(rows: list[dict[str, str]], columns: list[str]) -> str:
    widths = {c: max([len(c)] + [len(r.get(c, "")) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "").ljust(widths[c])
            if c == "result":
                mark = {
                    "success": ("✓ " + r[c]).ljust(widths[c] + 2),
                    "failure": ("✗ " + r[c]).ljust(widths[c] + 2),
                }
                v = mark.get(r[c], v)
                color = {"success": "green", "failure": "red"}.get(r[c])
                v = click.style(v, fg=color) if color else v
            cells.append(v)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def emit_docs(sources: list[dict[str, Any]], fmt: str, utc: bool) -> None:
    if fmt == "ndjson":
        out = sys.stdout.buffer
        for s in sources:
            out.write(orjson.dumps(s) + b"\n")
        out.flush()
    elif fmt == "json":
        click.echo(orjson.dumps(sources, option=orjson.OPT_INDENT_2).decode())
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for s in sources:
            w.writerow(row(s, utc=True))
        click.echo(buf.getvalue(), nl=False)
    else:
        if sources:
            click.echo(table([row(s, utc) for s in sources], COLUMNS))


def default_format() -> str:
    return "table" if is_tty() else "ndjson"
