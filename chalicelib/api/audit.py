"""`GET /api/audit`: the audit log, for administrators, filtered and cursor-paginated.

The search is in chalicelib/services/audit.py; this view reads the query and shapes the answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import Cursor, cursor_id, paginated, route
from chalicelib.db.vocabulary import AUDIT_OUTCOMES
from chalicelib.services import audit as audit_service
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import AuditLog

audit_api = Blueprint(__name__)


class AuditQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    cursor: Cursor | None = None
    user_id: Annotated[int, Meta(ge=1, le=999_999_999_999_999_999)] | None = None
    action: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    outcome: Literal[AUDIT_OUTCOMES] | None = None  # type: ignore[valid-type]
    resource_type: Annotated[str, Meta(min_length=1, max_length=50)] | None = None
    since: Annotated[datetime, Meta(tz=True, description="ISO-8601 with a time zone; entries at or after")] | None = (
        None
    )
    until: Annotated[datetime, Meta(tz=True, description="ISO-8601 with a time zone; entries before")] | None = None


def audit_json(entry: AuditLog) -> dict:
    return {
        "id": entry.id,
        "created_at": entry.created_at,
        "user_id": entry.user_id,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "outcome": entry.outcome,
        "ip": None if entry.ip is None else str(entry.ip),
        "user_agent": entry.user_agent,
        "request_id": entry.request_id,
        "details": entry.details,
    }


@route(
    audit_api,
    "/api/audit",
    methods=["GET"],
    query=AuditQuery,
    tag="audit",
    summary="The audit log, newest first (administrators): filter by user_id, action, outcome, resource_type, "
    "since, until",
    responses={403: "not an administrator"},
    response=responses.AuditPage,
)
def list_audit(query: AuditQuery):
    rows = audit_service.search(
        current_principal(audit_api.current_request),
        limit=query.limit + 1,
        before_id=cursor_id(query.cursor),
        user_id=query.user_id,
        action=query.action,
        outcome=query.outcome,
        resource_type=query.resource_type,
        since=query.since,
        until=query.until,
    )
    return paginated(rows, query.limit, audit_json)
