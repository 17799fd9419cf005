"""Keeping credentials out of everything printed: one place for URL userinfo and secret text.

Secrets reach output in three ways, each closed here: a URL with ``user:password@`` (shown
without it), a driver error that echoes what it was given (``scrub`` replaces every known
secret), and a connection string that does not parse (never shown at all).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK = "******"


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``; user/password None when absent."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    bare = urlunsplit(SplitResult(parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, user, password if sep else None


def redact_url(url: str) -> str:
    """The URL as it may be shown: userinfo replaced by ``******@``."""
    bare, user, _ = split_userinfo(url)
    if user is None:
        return url
    parts = urlsplit(bare)
    return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc}"))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (longest first, at least 3 characters) replaced by ``******``."""
    for s in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


def dsn_secrets(dsn: str) -> list[str]:
    """The parts of a PostgreSQL connection string that must never be printed."""
    out = [dsn]
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(dsn)
    except Exception:  # unparseable or no driver: the whole string stays the only secret
        return out
    out.extend(str(v) for k, v in params.items() if k in ("password", "sslpassword") and v)
    if "://" in dsn:
        out.extend(p for p in split_userinfo(dsn)[1:] if p and p == params.get("password"))
    return out


def one_line(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """An exception as one line for a log or an error message, secrets scrubbed."""
    text = str(exc).strip()
    return scrub(text.splitlines()[0] if text else type(exc).__name__, secrets)
