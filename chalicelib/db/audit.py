"""The audit log: who did what to which resource, from where, and how it ended.

One row per mutating request and per authentication event. Rows are only ever inserted;
`details` never holds a password, token or key (the writers pass only what is safe to keep).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chalicelib.db.tables import AuditLog


def outcome_of(status: int) -> str:
    """success (< 400), denied (401, 403), error (5xx), failure (any other 4xx)."""
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    return "error" if status >= 500 else "failure"


def _valid_ip(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def _text(value: str | None, limit: int) -> str | None:
    """At most `limit` characters, without control characters (PostgreSQL refuses NUL)."""
    if not value:
        return None
    return re.sub(r"[\x00-\x1f\x7f]", "", str(value))[:limit] or None


def record(
    session: Session,
    *,
    action: str,
    outcome: str,
    user_id: int | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        user_id=user_id,
        action=_text(action, 100) or "unknown",
        resource_type=_text(resource_type, 50),
        resource_id=_text(resource_id, 100),
        outcome=outcome,
        ip=_valid_ip(ip),
        user_agent=_text(user_agent, 500),
        request_id=_text(request_id, 100),
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry


def search(
    session: Session,
    *,
    limit: int,
    before_id: int | None = None,
    user_id: int | None = None,
    action: str | None = None,
    outcome: str | None = None,
    resource_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditLog]:
    """Newest first, keyset-paginated on id; every filter optional."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditLog.id < before_id)
    if user_id is not None:
        query = query.where(AuditLog.user_id == user_id)
    if action is not None:
        query = query.where(AuditLog.action == action)
    if outcome is not None:
        query = query.where(AuditLog.outcome == outcome)
    if resource_type is not None:
        query = query.where(AuditLog.resource_type == resource_type)
    if since is not None:
        query = query.where(AuditLog.created_at >= since)
    if until is not None:
        query = query.where(AuditLog.created_at < until)
    return list(session.scalars(query))
