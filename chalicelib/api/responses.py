"""The response bodies of every route, as msgspec Structs.

A route declares these with `route(..., response=...)`; chalicelib/api/routing.py encodes each
answer through its declared type (an undocumented or missing field is an error, not a silent
drift) and /openapi.json publishes their JSON Schemas. The CLI and the web page read only the
fields named here. This module imports msgspec and the vocabulary only: it is loaded at the api
function's cold start.

Free-form JSON (image metadata, parameters, metrics, analysis results) is `dict[str, Any]`:
its shape is the operation's, analyzer's or model's, described by GET /api/operations.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import msgspec

from chalicelib.db.vocabulary import (
    AUDIT_OUTCOMES,
    IMAGE_STATUSES,
    IMPORT_STATUSES,
    JOB_STATUSES,
    MODEL_FRAMEWORKS,
    MODEL_STATUSES,
    MODEL_TASKS,
    TASK_KINDS,
    TASK_STATUSES,
)

ImageStatus = Literal[IMAGE_STATUSES]  # type: ignore[valid-type]
TaskStatus = Literal[TASK_STATUSES]  # type: ignore[valid-type]
JobStatus = Literal[JOB_STATUSES]  # type: ignore[valid-type]
ImportStatus = Literal[IMPORT_STATUSES]  # type: ignore[valid-type]
Json = dict[str, Any]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A response body: every field is always sent (null when empty), no other field is."""


# --- accounts and credentials ---


class User(Body):
    id: int
    email: str
    role: Literal["user", "admin"]
    created_at: datetime


class Me(User):
    quota_bytes: int | None  # null: no quota
    used_bytes: int
    authenticated_by: Literal["token", "api_key", "local"]  # how this request was authenticated


class AccessToken(Body):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int  # seconds


class ApiKey(Body):
    id: int
    name: str
    prefix: str  # the key's first characters, to recognise it
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiKey(ApiKey):
    key: str  # shown in this answer only


class ApiKeyPage(Body):
    items: list[ApiKey]
    next_cursor: str | None


class AuditEntry(Body):
    id: int
    created_at: datetime
    user_id: int | None
    action: str
    resource_type: str | None
    resource_id: str | None
    outcome: Literal[AUDIT_OUTCOMES]  # type: ignore[valid-type]
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: Json


class AuditPage(Body):
    items: list[AuditEntry]
    next_cursor: str | None


# --- images ---


class Thumbnail(Body):
    width: int
    height: int
    format: str
    url: str  # presigned GET


class Image(Body):
    id: int
    status: ImageStatus
    error: str | None
    filename: str | None
    content_type: str | None
    format: str | None
    width: int | None
    height: int | None
    size_bytes: int | None
    sha256: str | None
    phash: str | None  # 16 hex digits
    metadata: Json
    thumbnails: list[Thumbnail]
    created_at: datetime
    processed_at: datetime | None


class ImageDetail(Image):
    analyses: dict[str, Json]  # the newest result of each analyzer run on the image, by analyzer name


class ImagePage(Body):
    items: list[Image]
    next_cursor: str | None


# One body for both searches of GET /api/images/{id}/similar: by perceptual hash (`max_distance`,
# each item's `distance`) or, with ?model=, by embedding (`model`, each item's `similarity`). The
# other search's fields are left out, not sent as null.
class SimilarImage(Body, omit_defaults=True):
    image: Image
    distance: int | None = None
    similarity: float | None = None


class SimilarImages(Body, omit_defaults=True):
    image_id: int
    items: list[SimilarImage]
    max_distance: int | None = None
    model: ModelVersion | None = None


class PresignedPost(Body):
    """A presigned POST: send `fields` and then the file as multipart/form-data to `url`."""

    url: str
    fields: dict[str, str]


class ImageUploadTicket(PresignedPost):
    image_id: int
    expires_in: int  # seconds


# --- datasets ---


class Dataset(Body):
    id: int
    name: str
    description: str | None
    source: Json  # {"type": "prefix" | "manifest" | "images", ...}
    item_count: int
    label_counts: dict[str, int]
    created_at: datetime


class DatasetPage(Body):
    items: list[Dataset]
    next_cursor: str | None


class DatasetUploadTicket(PresignedPost):
    key: str


# --- models ---


class Model(Body):
    id: int
    name: str
    version: int
    framework: Literal[MODEL_FRAMEWORKS]  # type: ignore[valid-type]
    task: Literal[MODEL_TASKS]  # type: ignore[valid-type]
    sha256: str
    size_bytes: int | None
    input_spec: Json
    labels: list[str]
    metrics: Json
    description: str | None
    status: Literal[MODEL_STATUSES]  # type: ignore[valid-type]
    created_at: datetime


class ModelOnnx(Body):
    """Where to download one model version as ONNX (GET /api/models/{name}/versions/{version}/onnx)."""

    name: str
    version: int
    framework: Literal[MODEL_FRAMEWORKS]  # type: ignore[valid-type]
    task: Literal[MODEL_TASKS]  # type: ignore[valid-type]
    # artifact: the registered ONNX file itself; sklearn_export: the scikit-learn model converted by
    # skl2onnx (input `features` float32 [N, n_features] of input_spec's feature; outputs `label`
    # and `probabilities` [N, classes] in `labels` order).
    kind: Literal["artifact", "sklearn_export"]
    url: str  # presigned GET (an attachment named <name>-v<version>.onnx)
    size_bytes: int | None
    input_spec: Json
    labels: list[str]


class ModelName(Body):
    name: str
    versions: int
    latest_version: int
    active_version: int | None
    active: Model | None


class ModelList(Body):
    items: list[ModelName]


class ModelVersions(Body):
    name: str
    active_version: int | None
    versions: list[Model]  # newest first


class ModelUploadTicket(PresignedPost):
    upload_id: str
    expires_in: int  # seconds


# --- tasks, the operations catalogue, statistics (routes in chalicelib/api/tasks.py) ---


class ModelVersion(Body):
    """A registered model version named in a task or a search."""

    name: str
    version: int


class Task(Body):
    id: int
    image_id: int
    kind: Literal[TASK_KINDS]  # type: ignore[valid-type]
    operation: str
    params: Json
    status: TaskStatus
    error: str | None
    # When succeeded: the analysis's or model's data (and `confidence`), or for an image output
    # width, height, format, size_bytes and a presigned `url`.
    result: Json | None
    attempts: int
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    model: ModelVersion | None


class TaskPage(Body):
    items: list[Task]
    next_cursor: str | None


class Operation(Body):
    name: str
    description: str
    runtime: str  # which worker runs it
    produces_image: bool
    params: Json  # JSON Schema of the parameters


class OperationCatalogue(Body):
    operations: list[Operation]
    analyzers: list[Operation]


class ImageCounts(Body):
    pending: int
    processing: int
    ready: int
    failed: int


class TaskStatistics(Body):
    operation: str
    status: TaskStatus
    count: int
    p50_duration_ms: float | None
    p95_duration_ms: float | None


class DailyVolume(Body):
    day: date
    tasks: int
    avg_confidence: float | None


class Statistics(Body):
    images: ImageCounts
    tasks: list[TaskStatistics]
    per_day: list[DailyVolume]  # newest first, at most 90 days
    as_of: datetime | None  # when the task summaries were refreshed


# --- batches (routes in chalicelib/api/batches.py) ---


class BatchProgress(Body):
    percent: int
    finished: int


class Batch(Body):
    id: int
    operation: str
    params: Json
    source: Json  # {"image_ids": n} | {"prefix": ...} | {"dataset_id": ...}
    status: JobStatus
    total: int
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    progress: BatchProgress
    export_key: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class BatchPage(Body):
    items: list[Batch]
    next_cursor: str | None


class BatchExport(Body):
    key: str
    url: str  # presigned GET of the Parquet file
    format: Literal["parquet"]
    rows: int


# --- bulk imports (routes in chalicelib/api/imports.py) ---


class Import(Body):
    id: int
    status: ImportStatus
    source: Json  # {"prefix": ...} | {"manifest_key": ..., "format": "keys"|"inventory", "columns"?: ...}
    listed: int  # objects found so far (the prefix's listing or the manifest's rows)
    listing_done: bool
    registered: int  # images this import created
    ready: int
    failed: int  # files that failed, each with its reason under /failures
    skipped: int  # objects already imported or uploaded before
    partitions: int
    partitions_done: int
    progress: BatchProgress
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class ImportPage(Body):
    items: list[Import]
    next_cursor: str | None


class ImportFailure(Body):
    id: int
    key: str
    reason: str
    created_at: datetime


class ImportFailurePage(Body):
    items: list[ImportFailure]
    next_cursor: str | None


class ExportWriting(Body):
    status: Literal["writing"]  # ask again (the Location header) until the export is written


# --- training jobs (routes in chalicelib/api/training.py) ---


class TrainingProgress(Body):
    percent: int
    stage: str | None


class TrainedModel(Body):
    id: int
    name: str
    version: int


class TrainingJob(Body):
    id: int
    dataset_id: int
    model_name: str
    algorithm: str
    features: str
    params: Json
    feature_params: Json
    fit: Json  # how a dataset larger than the sample is fitted: {method, sample_items}
    test_size: float
    seed: int
    status: JobStatus
    progress: TrainingProgress
    metrics: Json
    model: TrainedModel | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class TrainingJobPage(Body):
    items: list[TrainingJob]
    next_cursor: str | None


# --- system ---


class Endpoint(Body):
    method: str
    path: str
    summary: str


class Index(Body):
    name: str
    description: str
    version: str
    stage: str
    endpoints: list[Endpoint]


class ComponentHealth(Body, omit_defaults=True):
    status: Literal["up", "down"]
    latency_ms: float | None = None  # when up
    error: str | None = None  # when down: what failed


class Health(Body):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentHealth]


OpenApiDocument = dict[str, Any]
