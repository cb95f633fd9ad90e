"""The HTTP edge shared by every blueprint: declared routes, authentication, parsing, errors,
CORS and the audit log.

A route is declared once with its request schemas (msgspec Structs for the JSON body and the
query string) and its response types (chalicelib/api/responses.py, per status code); the
declaration validates requests, encodes every answer through its declared type and generates
the OpenAPI document (GET /openapi.json). Errors are always `{"error": {"code", "message"}}` with a 4xx that says
what was wrong. Every route requires a principal (identity.current_principal) unless it is
declared with `auth=False`; every mutating request (POST/PUT/PATCH/DELETE) is written to the
audit log after its view ran, with the outcome its status code says.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib.config import get_settings
from chalicelib.errors import ApiError, InvalidRequest
from chalicelib.logs import log_context

log = logging.getLogger("pixelake.api")

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CORS_ALLOWED_HEADERS = "Authorization, Content-Type, X-API-Key"
CORS_EXPOSED_HEADERS = "Location"
CORS_MAX_AGE_S = 600


def parse_id(raw: str, what: str) -> int:
    """A path id: a positive integer, else a 400 that says so."""
    if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise ApiError(400, "invalid_id", f"{what} id must be a positive integer, got {raw[:40]!r}")
    return int(raw)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any
) -> Response:
    return Response(
        body={"error": {"code": code, "message": message, **details}},
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def to_json(value: Any) -> Any:
    """Plain JSON types (datetimes as ISO-8601) from anything msgspec can encode."""
    return msgspec.to_builtins(value)


JSON_CONTENT_TYPE = "application/json"


class MediaBody:
    """A response body that is not JSON (a page, a script): the media types it may have."""

    def __init__(self, *media_types: str):
        self.media_types = media_types

    def __repr__(self) -> str:
        return f"MediaBody{self.media_types!r}"


# What a route answers with one status code: a response Struct (or another msgspec type), a
# MediaBody, a tuple of both (chosen by the response's Content-Type) or None for no body (204, 304).
ResponseBody = Any


class UndeclaredResponse(RuntimeError):
    """A view answered with a status or body its route does not declare: a bug, answered as a 500."""


def _alternatives(declared: ResponseBody) -> tuple:
    return declared if isinstance(declared, tuple) else (declared,)


def json_type(declared: ResponseBody) -> Any:
    return next((t for t in _alternatives(declared) if t is not None and not isinstance(t, MediaBody)), None)


def media_types_of(declared: ResponseBody) -> tuple[str, ...]:
    return tuple(m for t in _alternatives(declared) if isinstance(t, MediaBody) for m in t.media_types)


def _content_type(response: Response) -> str:
    value = next((v for k, v in (response.headers or {}).items() if k.lower() == "content-type"), JSON_CONTENT_TYPE)
    return str(value).split(";")[0].strip().lower()


@dataclass(frozen=True)
class RouteDoc:
    path: str
    method: str
    summary: str
    tag: str
    body: type | None = None
    query: type | None = None
    content_types: tuple[str, ...] = ("application/json",)
    responses: dict[int, str] = field(default_factory=dict)
    auth: bool = True
    # The body of each status the view answers with (errors are `Error`, declared by the wrapper);
    # None when the route declares no response types.
    response: dict[int, ResponseBody] | None = None
    operation_id: str = ""
    action: str = ""  # the audit log's name for a mutating request: "<tag>.<view>" unless declared
    form: dict | None = None  # JSON Schema of a multipart body's fields (OpenAPI only)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


ROUTES: list[RouteDoc] = []

# A keyset-pagination cursor (the last id seen): at most 18 digits, so it always fits a bigint
# (19 digits can exceed 2**63 - 1 and PostgreSQL would refuse the query).
Cursor = Annotated[str, Meta(pattern=r"^\d{1,18}$", description="next_cursor from the previous page")]


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    """`limit` and `cursor` of a list endpoint."""

    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    cursor: Cursor | None = None


def cursor_id(cursor: str | None) -> int | None:
    """The id a `next_cursor` of `paginated` stands for: the next page lists rows before it."""
    return int(cursor) if cursor else None


def paginated(rows: list, limit: int, to_json_item) -> dict:
    """A page of `limit` items from `rows` (fetched with limit + 1) and the cursor of the next one."""
    items = [to_json_item(row) for row in rows[:limit]]
    return {"items": items, "next_cursor": str(items[-1]["id"]) if len(rows) > limit else None}


_METHODS_BY_PATH: dict[str, list[str]] = {}


# --- request parsing ---


def _reject_nul(value: Any, where: str, code: str) -> None:
    """PostgreSQL text cannot hold U+0000: refuse it at the edge, not as a database error later."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(400, code, f"{where} contains a NUL character (U+0000), which is not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, where, code)
            _reject_nul(item, where, code)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _reject_nul(item, where, code)


def _decode_body(request, body_type: type) -> Any:
    raw = request.raw_body or b""
    if not raw.strip():
        raise ApiError(400, "invalid_request", "the request needs a JSON body")
    try:
        body: Any = msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    _reject_nul(msgspec.to_builtins(body), "the request body", "invalid_request")
    return body


def _decode_query(request, query_type: type | None) -> Any:
    params = dict(request.query_params or {})
    _reject_nul(params, "the query string", "invalid_query")
    if query_type is None:
        if params:
            raise ApiError(400, "invalid_query", f"this endpoint takes no query parameters, got {sorted(params)[:5]}")
        return None
    try:
        return msgspec.convert(params, type=query_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_query", f"invalid query parameter: {exc}") from None


def _respond(view: Callable, request, doc: RouteDoc, kwargs: dict) -> Response:
    settings = get_settings()
    if doc.auth:
        from chalicelib.services.identity import current_principal

        current_principal(request)  # a 401 before anything else is looked at
    if len(request.raw_body or b"") > settings.max_request_bytes:
        raise ApiError(
            413,
            "request_too_large",
            f"the request body is larger than {settings.max_request_bytes:,} bytes; "
            "upload large files with a presigned POST (POST /api/uploads)",
        )
    query = _decode_query(request, doc.query)
    if doc.body is not None:
        kwargs["body"] = _decode_body(request, doc.body)
    if doc.query is not None:
        kwargs["query"] = query
    result = view(**kwargs)
    if not isinstance(result, Response):
        result = Response(body=result, status_code=200, headers={"Content-Type": JSON_CONTENT_TYPE})
    return _encoded(doc, result)


def _encoded(doc: RouteDoc, response: Response) -> Response:
    """The response with its body encoded through the type its route declares for its status.

    The body becomes JSON text here (msgspec encodes faster than Chalice's json.dumps would), so
    a field the type does not name, a missing one or a wrong type is an UndeclaredResponse.
    """
    status = response.status_code
    if doc.response is None or (status >= 300 and status not in doc.response):
        if not isinstance(response.body, (str, bytes)):
            response.body = to_json(response.body)
        return response
    if status not in doc.response:
        raise UndeclaredResponse(f"{doc.method} {doc.path} answered {status}, which it does not declare")
    declared = doc.response[status]
    if declared is None:
        if response.body not in ("", b"", None):
            raise UndeclaredResponse(f"{doc.method} {doc.path} declares no body for {status}")
        return response
    content_type = _content_type(response)
    if content_type in media_types_of(declared):
        return response
    body_type = json_type(declared)
    if body_type is None or content_type != JSON_CONTENT_TYPE:
        raise UndeclaredResponse(f"{doc.method} {doc.path} answered {status} as {content_type}, not as declared")
    try:
        body = msgspec.convert(response.body, body_type)
    except msgspec.ValidationError as exc:
        raise UndeclaredResponse(
            f"{doc.method} {doc.path} answered {status} with a body unlike its type: {exc}"
        ) from None
    response.body = msgspec.json.encode(body).decode()
    return response


# --- CORS: origins from configuration; a list, which Chalice's single-origin CORSConfig cannot express ---


def _allowed_origin(request) -> str | None:
    origins = get_settings().cors_origins
    if "*" in origins:
        return "*"
    origin = (request.headers.get("origin") or "").rstrip("/")
    return origin if origin and origin in origins else None


def _with_cors(request, response: Response) -> Response:
    origin = _allowed_origin(request)
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
        if origin != "*":
            response.headers["Vary"] = "Origin"
    return response


def _register_preflight(bp: Blueprint, path: str) -> None:
    def preflight(**_: Any) -> Response:
        request = bp.current_request
        headers: dict[str, str | list[str]] = {
            "Access-Control-Allow-Methods": ", ".join([*_METHODS_BY_PATH[path], "OPTIONS"]),
            "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
        }
        response = Response(body="", status_code=204, headers=headers if _allowed_origin(request) else {})
        return _with_cors(request, response)

    preflight.__name__ = "preflight_" + (re.sub(r"\W+", "_", path).strip("_") or "root")
    bp.route(path, methods=["OPTIONS"])(preflight)


# --- the audit log ---

_AUDIT_NOTE = "_pixelake_audit"


def note_audit(request, **fields: Any) -> None:
    """Add to (or override) what the audit log records for this request: action, user_id,
    resource_type, resource_id, details. Never pass a password, token or key."""
    note = getattr(request, _AUDIT_NOTE, None)
    if note is None:
        note = {}
        setattr(request, _AUDIT_NOTE, note)
    details = {**note.get("details", {}), **fields.pop("details", {})}
    note.update(fields, details=details)


def request_id(request) -> str:
    """API Gateway's request id, else the Lambda invocation's (the local server), else a new one."""
    rid = getattr(request, "_pixelake_request_id", None) or (request.context or {}).get("requestId")
    if not rid and request.lambda_context is not None:
        rid = getattr(request.lambda_context, "aws_request_id", None)
    rid = rid or uuid.uuid4().hex
    request._pixelake_request_id = rid  # the log lines and the audit row name the same id
    return rid


# --- the deployed stage's path ---


def stage_prefix(request) -> str:
    """What API Gateway puts before the routes' paths: "/api" on a stage named api (or a custom
    domain's base path), "" locally. The request context's path has it, the event's path not."""
    full = (request.context or {}).get("path") or ""
    own = request.to_original_event().get("path") or ""
    if own and full != own and full.endswith(own):
        return full[: -len(own)].rstrip("/")
    return ""


def server_url(request) -> str:
    """This API's root URL as the client reached it (the OpenAPI document's `servers`)."""
    host = request.headers.get("host") or "localhost"
    scheme = request.headers.get("x-forwarded-proto") or ("https" if (request.context or {}).get("stage") else "http")
    return f"{scheme}://{host}{stage_prefix(request)}"


def _on_stage(request, response: Response) -> Response:
    """A Location header the views write as /api/… names the resource under the stage's path."""
    location = (response.headers or {}).get("Location")
    if isinstance(location, str) and location.startswith("/"):
        response.headers["Location"] = stage_prefix(request) + location
    return response


def _resource(doc: RouteDoc, kwargs: dict, response: Response) -> tuple[str | None, str | None]:
    """The resource a request acted on: its last path id, else what its Location header names."""
    params = doc.path_params
    if params:
        segments = doc.path.strip("/").split("/")
        index = segments.index(f"{{{params[-1]}}}")
        return (segments[index - 1] if index > 0 else None), str(kwargs.get(params[-1], ""))[:100] or None
    location = str((response.headers or {}).get("Location", ""))
    match = re.fullmatch(r"/api/([\w-]+)/(\d+)", location)
    return (match.group(1), match.group(2)) if match else (None, None)


def _record_audit(request, doc: RouteDoc, kwargs: dict, response: Response) -> None:
    from chalicelib.services import audit
    from chalicelib.services.identity import authenticated_principal

    try:
        note = dict(getattr(request, _AUDIT_NOTE, None) or {})
        principal = authenticated_principal(request)
        resource_type, resource_id = _resource(doc, kwargs, response)
        details = {"method": doc.method, "path": doc.path, "status": response.status_code, **note.pop("details", {})}
        if response.status_code >= 400 and isinstance(response.body, dict):
            details["error"] = response.body.get("error", {}).get("code")
        if principal is not None and principal.api_key_id is not None:
            details["api_key_id"] = principal.api_key_id
        identity = (request.context or {}).get("identity") or {}
        audit.record(
            action=note.pop("action", doc.action),
            status=response.status_code,
            user_id=note.pop("user_id", principal.user_id if principal else None),
            resource_type=note.pop("resource_type", resource_type),
            resource_id=note.pop("resource_id", resource_id),
            ip=identity.get("sourceIp"),
            user_agent=request.headers.get("user-agent"),
            request_id=request_id(request),
            details=details,
        )
    except Exception:  # the request's own work is committed: a lost audit row is logged, not a failure
        log.exception("could not write the audit log for %s %s", doc.method, doc.path)


# --- declaring routes ---


def route(
    bp: Blueprint,
    path: str,
    *,
    methods: list[str],
    summary: str,
    tag: str,
    body: type | None = None,
    query: type | None = None,
    content_types: list[str] | None = None,
    responses: dict[int, str] | None = None,
    response: ResponseBody | dict[int, ResponseBody] = ...,
    auth: bool = True,
    action: str | None = None,
    form: dict | None = None,
) -> Callable[[Callable], Callable]:
    """Register a view on a blueprint with its declared schemas, authentication, CORS, audit and JSON errors.

    `response` is the body of each status the view answers with, e.g. `response=Image` (200),
    `response={201: Dataset}`, `response={204: None}`; every answer is encoded through it.
    `responses` describes statuses (errors included) in words for the document.
    `auth=False` only for what must work signed out (health, the OpenAPI document, signing in).
    `query` must declare every query parameter the view reads: any other is a 400.
    """
    declared: dict[int, ResponseBody] | None
    if response is ...:
        declared = None
    elif isinstance(response, dict):
        declared = dict(response)
    else:
        declared = {200: response}

    def decorate(view: Callable) -> Callable:
        docs = [
            RouteDoc(
                path,
                method,
                summary,
                tag,
                body,
                query,
                tuple(content_types or ["application/json"]),
                responses or {},
                auth,
                response=declared,
                operation_id=view.__name__ if len(methods) == 1 else f"{view.__name__}_{method.lower()}",
                action=action or f"{tag}.{view.__name__}",
                form=form,
            )
            for method in methods
        ]
        ROUTES.extend(docs)

        @functools.wraps(view)
        def handle(**kwargs: Any) -> Response:
            request = bp.current_request
            doc = next(d for d in docs if d.method == request.method)
            with log_context(request_id=request_id(request)):
                return _handle(request, doc, kwargs)

        def _handle(request, doc: RouteDoc, kwargs: dict) -> Response:
            try:
                response = _respond(view, request, doc, kwargs)
            except ApiError as exc:
                response = error_response(exc.status, exc.code, exc.message, exc.headers, **exc.details)
            except InvalidRequest as exc:
                extra = {"allowed": exc.allowed} if exc.allowed is not None else {}
                response = error_response(400, exc.code, str(exc), **extra)
            except Exception:
                log.exception("unhandled error on %s %s", doc.method, path)
                response = error_response(500, "internal_error", "an internal error occurred; it has been logged")
            if doc.method in MUTATING_METHODS:
                _record_audit(request, doc, kwargs, response)
            return _with_cors(request, _on_stage(request, response))

        if path not in _METHODS_BY_PATH:
            _METHODS_BY_PATH[path] = []
            _register_preflight(bp, path)
        _METHODS_BY_PATH[path].extend(methods)
        extra = {"content_types": list(content_types)} if content_types else {}
        bp.route(path, methods=methods, **extra)(handle)
        return view

    return decorate


def created(body: Any, location: str, status: int = 201) -> Response:
    """A 201 (or 202) with a Location; the body is encoded through the route's declared type."""
    return Response(body=body, status_code=status, headers={"Content-Type": JSON_CONTENT_TYPE, "Location": location})
