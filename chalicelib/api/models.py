"""The model registry over HTTP: register versions (an upload or a URL), list, activate, archive.

A model name is the caller's own namespace (admins included): `"model": "resnet50"` in
/api/analyze resolves to the caller's active version of resnet50. Registering a name again
adds version N+1, which becomes the active one unless the request says `"activate": false`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from chalice import Blueprint
from msgspec import Meta

from chalicelib import storage
from chalicelib.api import responses, routing
from chalicelib.api.multipart import MultipartError, parse_multipart, request_bytes
from chalicelib.api.routing import created, route
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.db.vocabulary import MODEL_FRAMEWORKS, MODEL_TASKS
from chalicelib.errors import ApiError, InvalidRequest
from chalicelib.imaging.analyzers import ANALYZERS
from chalicelib.services import model_sources
from chalicelib.services.identity import current_principal
from chalicelib.services.model_sources import StagedArtifact

if TYPE_CHECKING:
    from chalicelib.db.tables import MLModel

models_api = Blueprint(__name__)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
MAX_LABELS = 10_000
MAX_LABEL_LENGTH = 200  # results.label holds the top label
# Built-in analyzers answer first in /api/analyze, and GET /api/models/uploads is not a model.
RESERVED_NAMES = frozenset(ANALYZERS.names()) | {"uploads"}
# onnx: onnxruntime (the inference function); opencv: cv2.dnn (the imaging worker); sklearn: the ml worker.
ARTIFACT_EXTENSIONS = {"onnx": "onnx", "opencv": "onnx", "sklearn": "skops"}

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


def clean_input_spec(framework: str, spec: dict) -> dict:
    """The normalized input spec: how an image becomes the model's input."""
    if framework == "sklearn":
        from chalicelib.ml.features import FEATURES, clean_feature_params

        unknown = sorted(set(spec) - {"feature", "feature_params"})
        if unknown or "feature" not in spec:
            extra = f"; unknown field(s) {unknown}" if unknown else ""
            raise InvalidRequest(
                "a scikit-learn model's input_spec names the feature it was trained on: "
                '{"feature": "pixels", "feature_params": {"size": 8}}' + extra,
                code="invalid_input_spec",
                allowed=FEATURES.names(),
            )
        if spec["feature"] not in FEATURES:
            raise InvalidRequest(
                f"unknown feature {spec['feature']!r}; allowed: {FEATURES.names()}",
                code="invalid_input_spec",
                allowed=FEATURES.names(),
            )
        if spec["feature"] == "embedding":
            raise InvalidRequest(
                "a classifier on a backbone's embeddings runs as one ONNX model (backbone + head): export it with "
                "chalicelib.ml.onnx_export.compose_with_backbone and register it as framework 'onnx'",
                code="invalid_input_spec",
            )
        params = clean_feature_params(spec["feature"], spec.get("feature_params"))
        return {"feature": spec["feature"], "feature_params": params}
    from chalicelib.ml.model_spec import validate_input_spec

    # onnxruntime models may leave the size to the graph (read at registration).
    return validate_input_spec(spec, size_optional=framework == "onnx").to_dict()


def check_request(body: RegisterRequest) -> dict:
    """Everything about a registration that can be refused before touching a file; returns the input spec."""
    if body.name in RESERVED_NAMES:
        raise ApiError(400, "reserved_name", f"{body.name!r} is the name of a built-in analyzer; choose another name")
    if body.framework == "sklearn" and body.task != "classify":
        raise ApiError(400, "invalid_task", "scikit-learn models are classifiers: task must be 'classify'")
    if body.framework == "opencv" and (
        body.task not in ("classify", "detect") or body.input_spec.get("head", "ssd") != "ssd"
    ):
        raise ApiError(
            400,
            "invalid_task",
            "cv2.dnn (framework 'opencv') runs classifiers and ssd detectors; "
            "register YOLO heads, segmentation and embedding models as framework 'onnx' (onnxruntime)",
        )
    if len(body.labels) != len(set(body.labels)):
        raise ApiError(400, "invalid_labels", "labels must be unique")
    if len(msgspec.json.encode(body.metrics)) > 1 << 20:
        raise ApiError(400, "invalid_metrics", "metrics must be under 1 MB of JSON")
    return clean_input_spec(body.framework, body.input_spec)


def check_artifact(framework: str, staged: StagedArtifact) -> None:
    """Refuse what is plainly not a model file (an HTML error page, the wrong format)."""
    if framework == "sklearn" and not staged.head.startswith(b"PK\x03\x04"):
        raise ApiError(400, "invalid_model", "a scikit-learn model must be a skops file (skops.io.dump; a zip)")
    # An ONNX file is a protobuf ModelProto whose first field (1, ir_version) every writer puts first.
    if framework in ("onnx", "opencv") and not staged.head.startswith(b"\x08"):
        raise ApiError(400, "invalid_model", "the file is not an ONNX model (ModelProto starting with ir_version)")


def check_onnx_graph(body: RegisterRequest, spec: dict, staged: StagedArtifact) -> dict:
    """The input spec after checking it against the inputs and outputs the ONNX file declares
    (its size filled in from a fixed-size input); a 400 `model_mismatch` naming what differs."""
    from chalicelib.ml.model_spec import check_graph, validate_input_spec
    from chalicelib.ml.onnx_graph import NotOnnx, signature

    try:
        graph = signature(storage.get(staged.key))
    except NotOnnx as exc:
        raise ApiError(400, "invalid_model", f"the file is not an ONNX model: {exc}") from None
    checked = check_graph(graph, validate_input_spec(spec, size_optional=True), body.task, list(body.labels))
    return checked.to_dict()


def register(user_id: int, body: RegisterRequest, spec: dict, staged: StagedArtifact) -> dict:
    """The new version's row and artifact, in one transaction (the copy happens under the name's lock)."""
    from chalicelib.db import ml_models as model_rows

    try:
        check_artifact(body.framework, staged)
        if body.framework in ("onnx", "opencv"):
            spec = check_onnx_graph(body, spec, staged)
        with session_scope() as session:
            version = model_rows.allocate_version(session, user_id, body.name)
            key = storage.model_key(user_id, body.name, version, ARTIFACT_EXTENSIONS[body.framework])
            model_sources.promote(staged, key)
            model = model_rows.create(
                session,
                owner_id=user_id,
                name=body.name,
                version=version,
                framework=body.framework,
                task=body.task,
                artifact_key=key,
                sha256=staged.sha256,
                size_bytes=staged.size_bytes,
                input_spec=spec,
                labels=list(body.labels),
                metrics=body.metrics,
                description=body.description,
                activate=body.activate,
            )
            result = model_json(model)
    finally:
        model_sources.discard(staged)
    return result


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
        spec = check_request(body)
        staged = model_sources.stage_bytes(user_id, bytes(parts["file"].data))
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
        spec = check_request(body)
        if body.url is not None:
            staged = model_sources.stage_url(user_id, body.url)
        else:
            assert body.upload_id is not None  # exactly one of the two (checked above)
            staged = model_sources.hash_staged(user_id, body.upload_id)
    model = register(user_id, body, spec, staged)
    return created(model, f"/api/models/{model['name']}")


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
    if body.size > get_settings().max_model_bytes:
        raise model_sources.too_large(body.size)
    user_id = current_principal(models_api.current_request).user_id
    upload_id, key = model_sources.new_upload(user_id)
    post = storage.presign_post(key, "application/octet-stream", max_bytes=body.size)
    return created(
        {
            "upload_id": upload_id,
            "url": post["url"],
            "fields": post["fields"],
            "expires_in": get_settings().presign_expiry_s,
        },
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
    from chalicelib.db import ml_models as model_rows

    user_id = current_principal(models_api.current_request).user_id
    with session_scope() as session:
        return {
            "items": [
                {
                    "name": s.name,
                    "versions": s.versions,
                    "latest_version": s.latest_version,
                    "active_version": s.active.version if s.active else None,
                    "active": model_json(s.active) if s.active else None,
                }
                for s in model_rows.list_names(session, user_id)
            ]
        }


def _name(raw: str) -> str:
    if not re.match(NAME_PATTERN, raw):
        raise ApiError(400, "invalid_name", f"model names match {NAME_PATTERN}, got {raw!r}")
    return raw


MAX_VERSION = 2**31 - 1  # ml_models.version is an INTEGER


def _version(raw: str, name: str) -> int:
    number = routing.parse_id(raw, "version")
    if number > MAX_VERSION:  # no such version can exist; asking the database would overflow
        raise no_such_model(name, number)
    return number


def owner_of(session, principal, name: str) -> int:
    """Whose model `name` a request means: always the caller's own; an administrator who has no
    model of that name reaches the newest other owner's (admins see everything)."""
    from chalicelib.db import ml_models as model_rows

    if not principal.is_admin or model_rows.list_versions(session, principal.user_id, name):
        return principal.user_id
    return model_rows.newest_owner(session, name) or principal.user_id


def no_such_model(name: str, version: int | None = None) -> ApiError:
    if version is None:
        return ApiError(404, "model_not_found", f"you have no model named {name!r}; register one with POST /api/models")
    return ApiError(
        404, "model_not_found", f"model {name!r} has no version {version}; GET /api/models/{name} lists them"
    )


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
    from chalicelib.db import ml_models as model_rows

    name = _name(name)
    principal = current_principal(models_api.current_request)
    with session_scope() as session:
        versions = model_rows.list_versions(session, owner_of(session, principal, name), name)
        if not versions:
            raise no_such_model(name)
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


def _change_version(raw_name: str, raw_version: str, change: str) -> dict:
    """Activate or archive one version of the caller's model (ml_models.activate / .archive)."""
    from chalicelib.db import ml_models as model_rows

    name = _name(raw_name)
    number = _version(raw_version, name)
    principal = current_principal(models_api.current_request)
    with session_scope() as session:
        model = getattr(model_rows, change)(session, owner_of(session, principal, name), name, number)
        if model is None:
            raise no_such_model(name, number)
        return model_json(model)
