"""`GET /openapi.json`: the OpenAPI 3.1 document, generated from the route declarations.

Request bodies, query strings and response bodies come from the msgspec Structs the routes
validate and encode with (chalicelib/api/responses.py; so the document cannot drift from what
the API accepts and answers), path parameters from `{name}` in the
path, security from each route's `auth`.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from chalice import Blueprint

from chalicelib import __version__
from chalicelib.api.responses import OpenApiDocument
from chalicelib.api.routing import (
    JSON_CONTENT_TYPE,
    ROUTES,
    RouteDoc,
    json_type,
    media_types_of,
    route,
    server_url,
)

openapi_api = Blueprint(__name__)

REF = "#/components/schemas/{name}"
MAX_ID = 999_999_999_999_999_999  # parse_id: at most 18 digits
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": "the image file (JPEG, PNG, WebP, GIF, TIFF or BMP)",
        }
    },
}
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an access token from POST /api/auth/token",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "an API key from POST /api/keys",
    },
}
ERROR_DESCRIPTIONS = {400: "invalid request", 401: "missing or invalid credentials", 413: "request body too large"}
STATUS_DESCRIPTIONS = {200: "OK", 201: "created", 202: "accepted", 204: "no content", 304: "not modified"}


def _without_null(schema: dict) -> dict:
    """A query parameter is absent rather than null: drop the `null` branch of an optional field."""
    if "default" in schema and schema["default"] is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    variants = schema.get("anyOf")
    if variants:
        kept = [v for v in variants if v.get("type") != "null"]
        if len(kept) == 1:
            return {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept[0]}
        return {**schema, "anyOf": kept}
    return schema


def _path_parameter(name: str) -> dict:
    schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID} if name.endswith("_id") else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _component(ref_schema: dict, components: dict) -> dict:
    """The component a `$ref` names (msgspec qualifies names that several modules share)."""
    return components[ref_schema["$ref"].removeprefix(REF.format(name=""))]


def _query_parameters(query_schema: dict, components: dict) -> list[dict]:
    struct_schema = _component(query_schema, components)
    required = set(struct_schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _without_null(schema)}
        for name, schema in struct_schema.get("properties", {}).items()
    ]


def _content(declared: Any, schema_of: dict) -> dict:
    """The media types and schemas of one declared response body."""
    content: dict[str, Any] = {}
    body_type = json_type(declared)
    if body_type is not None:
        content[JSON_CONTENT_TYPE] = {"schema": schema_of[body_type]}
    for media_type in media_types_of(declared):
        content[media_type] = {"schema": {"type": "string"}}
    return content


def _responses(doc: RouteDoc, schema_of: dict) -> dict:
    declared = dict(doc.responses)
    for status in doc.response or {}:
        declared.setdefault(status, STATUS_DESCRIPTIONS.get(status, "OK"))
    if not any(200 <= status < 300 for status in declared):
        declared[200] = "OK"
    implied = []
    if doc.body or doc.query or doc.path_params or doc.form or "multipart/form-data" in doc.content_types:
        implied.append(400)
    if doc.auth:
        implied.append(401)
    if doc.body or "multipart/form-data" in doc.content_types:
        implied.append(413)
    for status in implied:
        declared.setdefault(status, ERROR_DESCRIPTIONS[status])
    responses = {}
    for status in sorted(declared):
        response: dict[str, Any] = {"description": declared[status]}
        if doc.response is not None and status in doc.response:
            content = _content(doc.response[status], schema_of)
            if content:
                response["content"] = content
        elif status >= 400:
            response["content"] = {JSON_CONTENT_TYPE: {"schema": {"$ref": REF.format(name="Error")}}}
        responses[str(status)] = response
    return responses


def _operation(doc: RouteDoc, schema_of: dict, components: dict) -> dict:
    operation: dict[str, Any] = {
        "operationId": doc.operation_id or f"{doc.method.lower()}_{doc.path}",
        "summary": doc.summary,
        "tags": [doc.tag],
        "responses": _responses(doc, schema_of),
    }
    parameters = [_path_parameter(name) for name in doc.path_params]
    if doc.query is not None:
        parameters += _query_parameters(schema_of[doc.query], components)
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema_of[doc.body]}}}
    elif "multipart/form-data" in doc.content_types:
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": doc.form or UPLOAD_FORM}},
        }
    if not doc.auth:
        operation["security"] = []
    return operation


def openapi_document(routes: list[RouteDoc] | None = None) -> dict:
    routes = ROUTES if routes is None else routes
    request_types = [t for r in routes for t in (r.body, r.query)]
    response_types = [json_type(body) for r in routes for body in (r.response or {}).values()]
    types = list(dict.fromkeys(t for t in [*request_types, *response_types] if t is not None))
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(types, schemas))
    paths: dict[str, dict] = {}
    for doc in routes:
        paths.setdefault(doc.path, {})[doc.method.lower()] = _operation(doc, schema_of, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pixelake",
            "version": __version__,
            "description": "Serverless image processing and machine learning API. Errors are "
            '{"error": {"code", "message"}}; lists are cursor-paginated.',
        },
        "paths": paths,
        "components": {"schemas": {**components, "Error": ERROR_SCHEMA}, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
    }


@functools.cache
def _cached_document(route_count: int) -> dict:
    return openapi_document()


@route(
    openapi_api,
    "/openapi.json",
    methods=["GET"],
    tag="system",
    auth=False,
    summary="This API's OpenAPI 3.1 document",
    response=OpenApiDocument,
)
def openapi_json():
    # Routes are declared at import: the document only changes when a route is added.
    return {**_cached_document(len(ROUTES)), "servers": [{"url": server_url(openapi_api.current_request)}]}
