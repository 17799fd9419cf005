"""Output for humans and for scripts.

Humans get tables sized to the terminal (rich wraps the widest columns; the id column never
wraps, so it can be copied into ``show``), times with their zone in the header, and colour
only when ``--color`` (``LOGTO_SHIPPER_COLOR``) says so: ``auto`` (a terminal, and
``NO_COLOR`` unset), ``always`` or ``never``. Scripts get json/ndjson/csv, which never carry
colour or wrapping.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:  # rich is imported by the commands that draw tables, not at every start
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

COLUMNS = ["time", "event", "result", "user", "application", "ip", "id"]
MARKS = {"success": ("✓", "green"), "failure": ("✗", "red")}
# Columns that may wrap when a table is wider than the terminal; the others keep their width.
WRAPPING = {"event", "user", "application", "ip", "index", "histogram"}
RIGHT = {"count", "docs", "size"}


def color_mode() -> str:
    ctx = click.get_current_context(silent=True)
    return str(ctx.find_root().meta.get("color", "auto")) if ctx else "auto"


def console(err: bool = False, width: int | None = None) -> Console:
    """A console on stdout (or stderr) that follows ``--color`` and ``NO_COLOR``."""
    from rich.console import Console

    mode = color_mode()
    if mode == "auto" and os.environ.get("NO_COLOR"):
        mode = "never"  # no-color.org: no styling codes at all, bold included
    return Console(
        file=sys.stderr if err else sys.stdout,
        force_terminal=True if mode == "always" else None,
        no_color={"never": True, "always": False}.get(mode),  # auto: NO_COLOR decides
        color_system=None if mode == "never" else "auto",
        highlight=False,
        emoji=False,
        markup=False,
        width=width,
        soft_wrap=False,
    )


def get(src: dict[str, Any], path: str) -> Any:
    cur: Any = src
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def offset_label(delta: timedelta | None) -> str:
    """``UTC`` or ``+01:00``."""
    if not delta:
        return "UTC"
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass(frozen=True)
class Clock:
    """How times are written: in UTC or the local zone, whose offset goes into the header once;
    a row whose offset differs (a daylight-saving change inside the results) carries its own."""

    utc: bool
    now: datetime | None = None
    ms: bool = False  # tables show seconds; json and ``show`` keep milliseconds

    @property
    def zone(self) -> str:
        if self.utc:
            return "UTC"
        return offset_label((self.now or datetime.now(UTC)).astimezone().utcoffset())

    def __call__(self, ts: str | None) -> str:
        if not ts:
            return ""
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        local = dt.astimezone(UTC) if self.utc else dt.astimezone()
        text = local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if self.ms else local.strftime("%Y-%m-%d %H:%M:%S")
        own = offset_label(local.utcoffset())
        return text if own == self.zone else f"{text}{own}"


def when(ts: str | None, utc: bool) -> str:
    """One time with its zone, for detail views."""
    clock = Clock(utc, ms=True)
    text = clock(ts)
    return text if not text or text[-6] in "+-" else f"{text} {clock.zone}"


def named(name: str | None, ident: str | None) -> str:
    """``name (id)`` when a name is known, else the id."""
    if name and ident and name != ident:
        return f"{name} ({ident})"
    return ident or name or ""


def row(src: dict[str, Any], clock: Clock) -> dict[str, str]:
    return {
        "time": clock(get(src, "@timestamp")),
        "event": get(src, "event.action") or "",
        "result": get(src, "event.outcome") or "",
        "user": named(get(src, "user.name"), get(src, "user.id")),
        "application": named(get(src, "logto.application_name"), get(src, "logto.application_id")),
        "ip": get(src, "source.ip") or get(src, "logto.ip") or "",
        "id": get(src, "event.id") or "",
    }


def is_tty() -> bool:
    return sys.stdout.isatty()


def _cell(column: str, value: str) -> Text:
    from rich.text import Text

    if column == "result" and value in MARKS:
        mark, color = MARKS[value]
        return Text(f"{mark} {value}", style=color)
    return Text(value)


def build_table(
    rows: Sequence[dict[str, str]],
    columns: Sequence[str],
    *,
    headers: dict[str, str] | None = None,
    widths: dict[str, int] | None = None,
    min_widths: dict[str, int] | None = None,
    header: bool = True,
    footers: dict[str, str] | None = None,
) -> Table:
    """Columns separated by two spaces, headers upper-case and aligned with their cells;
    ``widths`` fixes column widths (``tail``: every batch lines up with the first)."""
    from rich.table import Table

    t = Table(
        box=None,
        show_header=header,
        show_footer=bool(footers),
        header_style="bold",
        footer_style="dim",
        pad_edge=False,
        padding=(0, 1),
        show_edge=False,
    )
    for c in columns:
        t.add_column(
            (headers or {}).get(c, c.upper()),
            justify="right" if c in RIGHT else "left",
            overflow="fold",
            no_wrap=c not in WRAPPING,
            width=(widths or {}).get(c),
            min_width=(min_widths or {}).get(c, len(c) if c in WRAPPING else None),
            footer=(footers or {}).get(c, ""),
        )
    for r in rows:
        t.add_row(*(_cell(c, r.get(c, "")) for c in columns))
    return t


def rendered(renderable: Any, width: int | None = None) -> str:
    """What ``renderable`` prints, without the trailing blanks rich pads lines with."""
    con = console(width=width)
    with con.capture() as cap:
        con.print(renderable)
    return "\n".join(line.rstrip() for line in cap.get().splitlines())


def echo(text: str) -> None:
    """Text rendered by ``rendered``: it carries colour codes only where ``console`` chose to."""
    click.echo(text, color=True)


def print_table(rows: Sequence[dict[str, str]], columns: Sequence[str], **kw: Any) -> None:
    echo(rendered(build_table(rows, columns, **kw)))


# Audit-log tables: one line per event from WIDE columns on; narrower terminals get two lines
# per event (time, result, event, id; then user, application and ip), so nothing is cut.
WIDE = 118
GAP = 2  # spaces between columns
DOC_MIN = {"time": 19, "result": 9, "id": 21, "event": 16, "user": 10, "application": 10, "ip": 15}
STACKED = ["time", "result", "event", "id"]


def doc_headers(clock: Clock) -> dict[str, str]:
    return {"time": f"TIME ({clock.zone})"}


def doc_widths(total: int, stacked: bool) -> dict[str, int]:
    """Fixed widths for a table that grows batch by batch (``tail``): time, result, ip and id at
    their usual size, the rest shared by the columns that wrap."""
    columns = STACKED if stacked else COLUMNS
    fixed: dict[str, int] = {c: DOC_MIN[c] for c in ("time", "result", "ip", "id") if c in columns}
    rest = max(DOC_MIN["event"], total - sum(fixed.values()) - GAP * (len(columns) - 1))
    if stacked:
        return {**fixed, "event": rest}
    return {**fixed, "event": rest * 2 // 5, "user": rest * 3 // 10, "application": rest - rest * 7 // 10}


def print_docs(
    docs: Sequence[dict[str, Any]],
    clock: Clock,
    *,
    header: bool = True,
    fixed: bool = False,
    width: int | None = None,
) -> None:
    """Events as a table that fits ``width`` (default: the terminal's)."""
    from rich.padding import Padding
    from rich.text import Text

    total = width or console().width
    rows = [row(d, clock) for d in docs]
    stacked = total < WIDE
    widths = doc_widths(total, stacked) if fixed else None
    headers = doc_headers(clock)
    if not stacked:
        table = build_table(rows, COLUMNS, headers=headers, widths=widths, min_widths=DOC_MIN, header=header)
        echo(rendered(table, total))
        return
    out = []
    if header:
        out.append(rendered(build_table([], STACKED, headers=headers, widths=doc_widths(total, True)), total))
    for r in rows:
        main = build_table([r], STACKED, widths=doc_widths(total, True), header=False)
        out.append(rendered(main, total))
        detail = "  ".join(f"{c} {r[c]}" for c in ("user", "application", "ip") if r[c])
        if detail:
            out.append(rendered(Padding(Text(detail, style="dim", overflow="fold"), (0, 0, 0, 4)), total))
    echo("\n".join(out))


def emit_docs(sources: Iterable[dict[str, Any]], fmt: str, utc: bool) -> None:
    docs = list(sources)
    if fmt == "ndjson":
        out = sys.stdout.buffer
        for s in docs:
            out.write(orjson.dumps(s) + b"\n")
        out.flush()
    elif fmt == "json":
        click.echo(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode())
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for s in docs:
            w.writerow(row(s, Clock(utc=True, ms=True)))
        click.echo(buf.getvalue(), nl=False)
    elif docs:
        print_docs(docs, Clock(utc))


def default_format() -> str:
    return "table" if is_tty() else "ndjson"
