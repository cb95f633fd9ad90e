"""The model registry over HTTP: register versions (an upload or a URL), list, activate, archive.

A model name is the caller's own namespace (admins included): `"model": "resnet50"` in
/api/analyze resolves to the caller's active version of resnet50. Registering a name again
adds version N+1, which becomes the active one unless the request says `"activate": false`.
The logic is in chalicelib/services/models.py; these views read the request and shape the answer.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib.api import responses, routing
from chalicelib.api.multipart import MultipartError, parse_multipart, request_bytes
from chalicelib.api.routing import created, route
from chalicelib.db.vocabulary import MODEL_FRAMEWORKS, MODEL_TASKS
from chalicelib.errors import ApiError
from chalicelib.services import models as model_service
from chalicelib.services.identity import current_principal
from chalicelib.services.models import Registration

if TYPE_CHECKING:
    from chalicelib.db.tables import MLModel

models_api = Blueprint(__name__)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
MAX_LABELS = 10_000
MAX_LABEL_LENGTH = 200  # results.label holds the top label

Name = Annotated[str, Meta(pattern=NAME_PATTERN, description="lowercase letters, digits, _ . -; up to 100")]
Label = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL_LENGTH)]


class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    framework: Literal[MODEL_FRAMEWORKS]  # type: ignore[valid-type]
    task: Literal[MODEL_TASKS]  # type: ignore[valid-type]
    input_spec: dict[str, Any] = {}
    labels: Annotated[list[Label], Meta(max_length=MAX_LABELS)] = []
    metrics: dict[str, Any] = {}
    description: Annotated[str, Meta(max_length=2000)] | None = None
    url: Annotated[str, Meta(max_length=2048)] | None = None
    upload_id: str | None = None
    activate: bool = True


class ModelUploadRequest(msgspec.Struct, forbid_unknown_fields=True):
    size: Annotated[int, Meta(ge=1)]
    filename: Annotated[str, Meta(max_length=1024)] | None = None


def model_json(model: MLModel) -> dict:
    return {
        "id": model.id,
        "name": model.name,
        "version": model.version,
        "framework": model.framework,
        "task": model.task,
        "sha256": model.sha256,
        "size_bytes": model.size_bytes,
        "input_spec": model.input_spec,
        "labels": model.labels,
        "metrics": model.metrics,
        "description": model.description,
        "status": model.status,
        "created_at": model.created_at,
    }


def _registration(body: RegisterRequest) -> Registration:
    return Registration(
        name=body.name,
        framework=body.framework,
        task=body.task,
        input_spec=body.input_spec,
        labels=list(body.labels),
        metrics=body.metrics,
        description=body.description,
        activate=body.activate,
    )


def _decode_registration(raw: bytes) -> RegisterRequest:
    try:
        return msgspec.json.decode(raw, type=RegisterRequest)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


@route(
    models_api,
    "/api/models",
    methods=["POST"],
    tag="models",
    content_types=["application/json", "multipart/form-data"],
    summary="Register a model version: JSON with `url` or `upload_id`, or multipart with `file` and a `metadata` "
    "JSON part; the new version becomes active unless `activate` is false",
    responses={
        201: "the model version",
        400: "bad name, spec, labels, url or file",
        404: "no such upload",
        413: "file too large",
    },
    response={201: responses.Model},
)
def register_model():
    request = models_api.current_request
    user_id = current_principal(request).user_id
    content_type = (request.headers.get("content-type") or "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            parts = parse_multipart(request_bytes(request), request.headers.get("content-type", ""))
        except MultipartError as exc:
            raise ApiError(400, "invalid_multipart", str(exc)) from None
        if "metadata" not in parts or "file" not in parts or not parts["file"].data:
            raise ApiError(
                400,
                "missing_file",
                "send the model as the multipart field 'file' and its description "
                "(name, framework, task, input_spec, labels) as the JSON field 'metadata'",
            )
        body = _decode_registration(bytes(parts["metadata"].data))
        if body.url or body.upload_id:
            raise ApiError(
                400, "invalid_request", "a multipart registration carries the file itself: no url or upload_id"
            )
        model = model_service.register(user_id, _registration(body), data=bytes(parts["file"].data))
    else:
        raw = request_bytes(request)
        if not raw.strip():
            raise ApiError(400, "invalid_request", "the request needs a JSON body")
        body = _decode_registration(raw)
        if (body.url is None) == (body.upload_id is None):
            raise ApiError(
                400,
                "invalid_request",
                "give exactly one of 'url' (http or https) and 'upload_id' "
                "(from POST /api/models/uploads), or send the file as multipart",
            )
        model = model_service.register(user_id, _registration(body), url=body.url, upload_id=body.upload_id)
    return created(model_json(model), f"/api/models/{model.name}")


def _document_body(path: str, method: str, body: type) -> None:
    """Give a route that decodes its own body (JSON or multipart) its JSON schema in the docs."""
    for i, doc in enumerate(routing.ROUTES):
        if (doc.path, doc.method) == (path, method):
            routing.ROUTES[i] = dataclasses.replace(doc, body=body)


_document_body("/api/models", "POST", RegisterRequest)


@route(
    models_api,
    "/api/models/uploads",
    methods=["POST"],
    body=ModelUploadRequest,
    tag="models",
    summary="Start a direct upload of a model file to S3: a presigned POST; then POST /api/models with its upload_id",
    responses={201: "upload_id, url and fields", 413: "too large"},
    response={201: responses.ModelUploadTicket},
)
def presign_model_upload(body: ModelUploadRequest):
    ticket = model_service.start_upload(current_principal(models_api.current_request).user_id, body.size)
    return created(
        {"upload_id": ticket.upload_id, "url": ticket.url, "fields": ticket.fields, "expires_in": ticket.expires_in},
        "/api/models",
    )


@route(
    models_api,
    "/api/models",
    methods=["GET"],
    tag="models",
    summary="Your models: each name with its number of versions, latest version and active version",
    response=responses.ModelList,
)
def list_models():
    summaries = model_service.names(current_principal(models_api.current_request).user_id)
    return {
        "items": [
            {
                "name": s.name,
                "versions": s.versions,
                "latest_version": s.latest_version,
                "active_version": s.active.version if s.active else None,
                "active": model_json(s.active) if s.active else None,
            }
            for s in summaries
        ]
    }


def _name(raw: str) -> str:
    if not re.match(NAME_PATTERN, raw):
        raise ApiError(400, "invalid_name", f"model names match {NAME_PATTERN}, got {raw!r}")
    return raw


@route(
    models_api,
    "/api/models/{name}",
    methods=["GET"],
    tag="models",
    summary="The versions of one model, newest first",
    responses={404: "no such model"},
    response=responses.ModelVersions,
)
def get_model(name: str):
    name = _name(name)
    versions = model_service.versions(current_principal(models_api.current_request), name)
    active = next((m.version for m in versions if m.status == "active"), None)
    return {"name": name, "active_version": active, "versions": [model_json(m) for m in versions]}


@route(
    models_api,
    "/api/models/{name}/versions/{version}/activate",
    methods=["POST"],
    tag="models",
    summary="Make this version the one the name runs (the previously active version becomes inactive)",
    responses={404: "no such model version"},
    response=responses.Model,
)
def activate_model(name: str, version: str):
    return _change_version(name, version, "activate")


@route(
    models_api,
    "/api/models/{name}/versions/{version}/archive",
    methods=["POST"],
    tag="models",
    summary="Retire this version (if it was active, the name has no active version until one is activated)",
    responses={404: "no such model version"},
    response=responses.Model,
)
def archive_model(name: str, version: str):
    return _change_version(name, version, "archive")


def _change_version(raw_name: str, raw_version: str, change: Literal["activate", "archive"]) -> dict:
    name = _name(raw_name)
    number = routing.parse_id(raw_version, "version")
    return model_json(model_service.change_version(current_principal(models_api.current_request), name, number, change))
