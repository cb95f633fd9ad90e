"""The model registry: register versions (an upload, a URL or the bytes themselves), list names
and versions, activate and archive versions.

A model name is the caller's own namespace (admins included): `"model": "resnet50"` in
/api/analyze resolves to the caller's active version of resnet50. Registering a name again
adds version N+1, which becomes the active one unless the registration says `activate=False`.
The views in chalicelib/api/models.py read the request and shape these rows into answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, InvalidRequest

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chalicelib.db.ml_models import NameSummary
    from chalicelib.db.tables import MLModel
    from chalicelib.services.identity import Principal
    from chalicelib.services.model_sources import StagedArtifact

# Built-in analyzers answer first in /api/analyze, and GET /api/models/uploads is not a model.
# The analyzers registry and the model sources (url fetches, staging) are imported by the calls
# that need them: this module is on every function's import path (app.py's blueprints), and the
# ingest and worker cold starts need neither.
RESERVED_NAMES = frozenset({"uploads"})


def reserved(name: str) -> bool:
    from chalicelib.imaging.analyzers import ANALYZERS

    return name in RESERVED_NAMES or name in ANALYZERS.names()


# onnx: onnxruntime (the inference function); opencv: cv2.dnn (the imaging worker); sklearn: the ml worker.
ARTIFACT_EXTENSIONS = {"onnx": "onnx", "opencv": "onnx", "sklearn": "skops"}
MAX_VERSION = 2**31 - 1  # ml_models.version is an INTEGER


@dataclass(frozen=True)
class Registration:
    """What a new version is, as the caller describes it (its file comes separately)."""

    name: str
    framework: str
    task: str
    input_spec: dict[str, Any]
    labels: list[str]
    metrics: dict[str, Any]
    description: str | None = None
    activate: bool = True


@dataclass(frozen=True)
class ModelUploadTicket:
    """A presigned POST of a model file to its staging key; registration names it by upload_id."""

    upload_id: str
    url: str
    fields: dict[str, str]
    expires_in: int  # seconds


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


def check_registration(registration: Registration) -> dict:
    """Everything about a registration that can be refused before touching a file; returns the input spec."""
    name, framework, task = registration.name, registration.framework, registration.task
    if reserved(name):
        raise ApiError(400, "reserved_name", f"{name!r} is the name of a built-in analyzer; choose another name")
    if framework == "sklearn" and task != "classify":
        raise ApiError(400, "invalid_task", "scikit-learn models are classifiers: task must be 'classify'")
    if framework == "opencv" and (
        task not in ("classify", "detect") or registration.input_spec.get("head", "ssd") != "ssd"
    ):
        raise ApiError(
            400,
            "invalid_task",
            "cv2.dnn (framework 'opencv') runs classifiers and ssd detectors; "
            "register YOLO heads, segmentation and embedding models as framework 'onnx' (onnxruntime)",
        )
    if len(registration.labels) != len(set(registration.labels)):
        raise ApiError(400, "invalid_labels", "labels must be unique")
    if len(msgspec.json.encode(registration.metrics)) > 1 << 20:
        raise ApiError(400, "invalid_metrics", "metrics must be under 1 MB of JSON")
    return clean_input_spec(framework, registration.input_spec)


def check_artifact(framework: str, staged: StagedArtifact) -> None:
    """Refuse what is plainly not a model file (an HTML error page, the wrong format)."""
    if framework == "sklearn" and not staged.head.startswith(b"PK\x03\x04"):
        raise ApiError(400, "invalid_model", "a scikit-learn model must be a skops file (skops.io.dump; a zip)")
    # An ONNX file is a protobuf ModelProto whose first field (1, ir_version) every writer puts first.
    if framework in ("onnx", "opencv") and not staged.head.startswith(b"\x08"):
        raise ApiError(400, "invalid_model", "the file is not an ONNX model (ModelProto starting with ir_version)")


def check_onnx_graph(registration: Registration, spec: dict, staged: StagedArtifact) -> dict:
    """The input spec after checking it against the inputs and outputs the ONNX file declares
    (its size filled in from a fixed-size input); a 400 `model_mismatch` naming what differs."""
    from chalicelib.ml.model_spec import check_graph, validate_input_spec
    from chalicelib.ml.onnx_graph import NotOnnx, signature

    try:
        graph = signature(storage.get(staged.key))
    except NotOnnx as exc:
        raise ApiError(400, "invalid_model", f"the file is not an ONNX model: {exc}") from None
    checked = check_graph(
        graph, validate_input_spec(spec, size_optional=True), registration.task, list(registration.labels)
    )
    return checked.to_dict()


def register(
    user_id: int,
    registration: Registration,
    *,
    data: bytes | None = None,
    url: str | None = None,
    upload_id: str | None = None,
) -> MLModel:
    """A new version of the caller's model from exactly one source: the file's bytes, an http(s)
    URL, or a staging upload (start_upload). The registration is checked before any file is
    fetched; the row and the artifact are written in one transaction (the copy happens under the
    name's lock) and the staged file is deleted whatever happens."""
    if sum(source is not None for source in (data, url, upload_id)) != 1:
        raise ValueError("register needs exactly one of data, url and upload_id")
    from chalicelib.services import model_sources

    spec = check_registration(registration)
    if data is not None:
        staged = model_sources.stage_bytes(user_id, data)
    elif url is not None:
        staged = model_sources.stage_url(user_id, url)
    else:
        assert upload_id is not None  # exactly one of the three (checked above)
        staged = model_sources.hash_staged(user_id, upload_id)
    return _store(user_id, registration, spec, staged)


def _store(user_id: int, registration: Registration, spec: dict, staged: StagedArtifact) -> MLModel:
    from chalicelib.db import ml_models as model_rows
    from chalicelib.services import model_sources

    try:
        check_artifact(registration.framework, staged)
        if registration.framework in ("onnx", "opencv"):
            spec = check_onnx_graph(registration, spec, staged)
        with session_scope() as session:
            version = model_rows.allocate_version(session, user_id, registration.name)
            key = storage.model_key(user_id, registration.name, version, ARTIFACT_EXTENSIONS[registration.framework])
            model_sources.promote(staged, key)
            return model_rows.create(
                session,
                owner_id=user_id,
                name=registration.name,
                version=version,
                framework=registration.framework,
                task=registration.task,
                artifact_key=key,
                sha256=staged.sha256,
                size_bytes=staged.size_bytes,
                input_spec=spec,
                labels=list(registration.labels),
                metrics=registration.metrics,
                description=registration.description,
                activate=registration.activate,
            )
    finally:
        model_sources.discard(staged)


def start_upload(user_id: int, size: int) -> ModelUploadTicket:
    """A presigned POST for a model file of `size` bytes (413 beyond max_model_bytes)."""
    from chalicelib.services import model_sources

    settings = get_settings()
    if size > settings.max_model_bytes:
        raise model_sources.too_large(size)
    upload_id, key = model_sources.new_upload(user_id)
    post = storage.presign_post(key, "application/octet-stream", max_bytes=size)
    return ModelUploadTicket(upload_id, post["url"], post["fields"], settings.presign_expiry_s)


def names(user_id: int) -> list[NameSummary]:
    """Each of the caller's model names with its version count, latest version and active version."""
    from chalicelib.db import ml_models as model_rows

    with session_scope() as session:
        return model_rows.list_names(session, user_id)


def _owner_of(session: Session, principal: Principal, name: str) -> int:
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


def find_version(session: Session, principal: Principal, name: str, version: int) -> MLModel:
    """One version of the model `name` the request means (see _owner_of); 404 when there is none."""
    from chalicelib.db import ml_models as model_rows

    if version > MAX_VERSION:  # no such version can exist; asking the database would overflow
        raise no_such_model(name, version)
    model = model_rows.get_version(session, _owner_of(session, principal, name), name, version)
    if model is None:
        raise no_such_model(name, version)
    return model


def versions(principal: Principal, name: str) -> list[MLModel]:
    """Every version of the model `name`, newest first (404 when there is none)."""
    from chalicelib.db import ml_models as model_rows

    with session_scope() as session:
        rows = model_rows.list_versions(session, _owner_of(session, principal, name), name)
    if not rows:
        raise no_such_model(name)
    return rows


def change_version(principal: Principal, name: str, version: int, change: Literal["activate", "archive"]) -> MLModel:
    """Activate one version (the previously active one becomes inactive) or archive it
    (ml_models.activate / .archive); 404 when the version does not exist."""
    from chalicelib.db import ml_models as model_rows

    if version > MAX_VERSION:  # no such version can exist; asking the database would overflow
        raise no_such_model(name, version)
    with session_scope() as session:
        model = getattr(model_rows, change)(session, _owner_of(session, principal, name), name, version)
    if model is None:
        raise no_such_model(name, version)
    return model
