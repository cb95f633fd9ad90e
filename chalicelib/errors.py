"""The errors every layer raises; the API turns each into `{"error": {"code", "message"}}` with its status.

`ApiError` carries an HTTP status and is raised by services for what the caller must change
(a 404, a 409, a quota); `InvalidRequest` is a 400 for a bad name or parameter and is raised by
the registries, which know nothing of HTTP.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


def found(row, what: str, ident: Any):
    """The row, or the 404 for `what` (another user's resource answers the same: no existence leak)."""
    if row is None:
        raise not_found(what, ident)
    return row


def not_found(what: str, ident: Any) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} does not exist")


class InvalidRequest(ValueError):
    """A request names something that does not exist or gives a bad parameter (a 400)."""

    def __init__(self, message: str, *, code: str = "invalid_parameter", allowed: Any = None):
        super().__init__(message)
        self.code = code
        self.allowed = allowed


class DatabaseNotConfigured(RuntimeError):
    """DATABASE_URL is empty: the process was started without a database to talk to."""


class ComputeUnavailable(Exception):
    """The Dask cluster cannot run a job (no scheduler, different versions or code, a misconfigured worker).

    Raised at submit, before anything is queued: the caller records it as the job's failure reason.
    """
