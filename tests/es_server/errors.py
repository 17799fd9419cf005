"""Elasticsearch's error responses: ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``."""

from __future__ import annotations

from typing import Any


class EsError(Exception):
    """Raised anywhere in the server; rendered exactly as Elasticsearch renders its exceptions."""

    def __init__(
        self,
        status: int,
        type_: str,
        reason: str,
        caused_by: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason = status, type_, reason
        self.caused_by, self.extra, self.headers = caused_by, extra, headers or {}

    def cause(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "reason": self.reason, **self.extra}
        if self.caused_by:
            out["caused_by"] = self.caused_by
        return out

    root_causes: list[dict[str, Any]] | None = None  # None: the error itself

    def body(self) -> dict[str, Any]:
        root = {"type": self.type, "reason": self.reason, **self.extra}
        roots = [root] if self.root_causes is None else self.root_causes
        return {"error": {"root_cause": roots, **self.cause()}, "status": self.status}


def index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        **{
            "resource.type": "index_or_alias",
            "resource.id": name,
            "index_uuid": "_na_",
            "index": name,
        },
    )


def bad_request(reason: str, type_: str = "illegal_argument_exception") -> EsError:
    return EsError(400, type_, reason)


def parsing(reason: str, line: int = 1, col: int = 1) -> EsError:
    return EsError(400, "parsing_exception", reason, line=line, col=col)


def x_content(reason: str) -> EsError:
    return EsError(400, "x_content_parse_exception", f"[1:1] {reason}")


def resource_missing(type_: str, reason: str) -> EsError:
    return EsError(404, type_, reason)
