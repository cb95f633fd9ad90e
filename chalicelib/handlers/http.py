"""The HTTP edge shared by every blueprint: declared routes, parsing, errors, JSON.

A route is declared once with its request schemas (msgspec Structs for the JSON body and the
query string); the declaration validates requests and generates the OpenAPI document.
Errors are always `{"error": {"code", "message"}}` with a 4xx that says what was wrong.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec
from chalice import Blueprint, Response

from chalicelib.config import get_settings
from chalicelib.ml.registry import InvalidRequest

log = logging.getLogger("pixelake.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(what: str, ident: Any) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} does not exist")


def parse_id(raw: str, what: str) -> int:
    """A path id: a positive integer, else a 400 that says so."""
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_id", f"{what} id must be a positive integer, got {raw!r}")
    return int(raw)


def error_response(status: int, code: str, message: str, **details: Any) -> Response:
    return Response(body={"error": {"code": code, "message": message, **details}}, status_code=status,
                    headers={"Content-Type": "application/json"})


def to_json(value: Any) -> Any:
    """Plain JSON types (datetimes as ISO-8601) from anything msgspec can encode."""
    return msgspec.to_builtins(value)


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


ROUTES: list[RouteDoc] = []


def _decode_body(request, body_type: type) -> Any:
    raw = request.raw_body or b""
    if not raw.strip():
        raise ApiError(400, "invalid_request", "the request needs a JSON body")
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _decode_query(request, query_type: type) -> Any:
    params = dict(request.query_params or {})
    try:
        return msgspec.convert(params, type=query_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_query", f"invalid query parameter: {exc}") from None


def _respond(view: Callable, bp: Blueprint, doc: RouteDoc, kwargs: dict) -> Response:
    request = bp.current_request
    if len(request.raw_body or b"") > get_settings().max_request_bytes:
        raise ApiError(413, "request_too_large",
                       f"the request body is larger than {get_settings().max_request_bytes:,} bytes; "
                       "upload large files with a presigned POST (POST /api/uploads)")
    if doc.body is not None:
        kwargs["body"] = _decode_body(request, doc.body)
    if doc.query is not None:
        kwargs["query"] = _decode_query(request, doc.query)
    result = view(**kwargs)
    if isinstance(result, Response):
        return result
    return Response(body=to_json(result), status_code=200, headers={"Content-Type": "application/json"})


def route(bp: Blueprint, path: str, *, methods: list[str], summary: str, tag: str, body: type | None = None,
          query: type | None = None, content_types: list[str] | None = None,
          responses: dict[int, str] | None = None) -> Callable[[Callable], Callable]:
    """Register a view on a blueprint with its declared schemas and JSON error handling."""
    def decorate(view: Callable) -> Callable:
        doc = RouteDoc(path, methods[0], summary, tag, body, query,
                       tuple(content_types or ["application/json"]), responses or {})
        ROUTES.append(doc)

        @functools.wraps(view)
        def handle(**kwargs: Any) -> Response:
            try:
                return _respond(view, bp, doc, kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message, **exc.details)
            except InvalidRequest as exc:
                extra = {"allowed": exc.allowed} if exc.allowed is not None else {}
                return error_response(400, exc.code, str(exc), **extra)
            except Exception:
                log.exception("unhandled error on %s %s", doc.method, path)
                return error_response(500, "internal_error", "an internal error occurred; it has been logged")

        extra = {"content_types": list(content_types)} if content_types else {}
        bp.route(path, methods=methods, **extra)(handle)
        return view
    return decorate


def created(body: Any, location: str, status: int = 201) -> Response:
    return Response(body=to_json(body), status_code=status,
                    headers={"Content-Type": "application/json", "Location": location})
