"""The audit log: what the API records of every mutating request, and its search for administrators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError
from chalicelib.services.identity import require_admin

if TYPE_CHECKING:
    from datetime import datetime

    from chalicelib.db.tables import AuditLog
    from chalicelib.services.identity import Principal


def record(
    *,
    action: str,
    status: int,
    user_id: int | None,
    resource_type: str | None,
    resource_id: str | None,
    ip: str | None,
    user_agent: str | None,
    request_id: str,
    details: dict[str, Any],
) -> None:
    """Write one entry, its outcome from the response's status code, in its own transaction."""
    from chalicelib.db import audit

    with session_scope() as session:
        audit.record(
            session,
            action=action,
            outcome=audit.outcome_of(status),
            user_id=user_id,
            resource_type=resource_type,
            resource_id=resource_id,
            ip=ip,
            user_agent=user_agent,
            request_id=request_id,
            details=details,
        )


def search(
    principal: Principal,
    *,
    limit: int,
    before_id: int | None,
    user_id: int | None = None,
    action: str | None = None,
    outcome: str | None = None,
    resource_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditLog]:
    """Entries newest first, every filter optional: for administrators only (403), since before until (400)."""
    from chalicelib.db import audit

    require_admin(principal)
    if since and until and since >= until:
        raise ApiError(400, "invalid_query", "since must be before until")
    with session_scope() as session:
        return audit.search(
            session,
            limit=limit,
            before_id=before_id,
            user_id=user_id,
            action=action,
            outcome=outcome,
            resource_type=resource_type,
            since=since,
            until=until,
        )
