"""One typed Settings object, read from the environment once per process.

Every limit has a name and a documented default (thumbor's habit): change it with the
environment variable named in the field's metadata, never by editing code.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


def _env(name: str, doc: str):
    return {"env": name, "doc": doc}


@dataclass(frozen=True)
class Settings:
    stage: str = field(default="local", metadata=_env("PIXELAKE_STAGE", "deployment stage: local, dev, prod"))
    database_url: str = field(
        default="", metadata=_env("DATABASE_URL", "postgresql+pg8000://… (the local stack sets it)")
    )
    aws_region: str = field(default="us-east-1", metadata=_env("AWS_DEFAULT_REGION", "AWS region"))
    aws_endpoint_url: str = field(
        default="", metadata=_env("AWS_ENDPOINT_URL", "S3/SQS endpoint (moto, LocalStack); empty for AWS")
    )
    bucket: str = field(
        default="", metadata=_env("PIXELAKE_BUCKET", "bucket for uploads/, thumbnails/, results/, models/, exports/")
    )
    uploads_queue: str = field(
        default="", metadata=_env("PIXELAKE_UPLOADS_QUEUE", "queue fed by S3 notifications for uploads/")
    )
    tasks_queue: str = field(
        default="", metadata=_env("PIXELAKE_TASKS_QUEUE", "queue of image operations and analyses")
    )
    ml_tasks_queue: str = field(
        default="", metadata=_env("PIXELAKE_ML_TASKS_QUEUE", "queue of scikit-learn model tasks")
    )
    inference_queue: str = field(
        default="", metadata=_env("PIXELAKE_INFERENCE_QUEUE", "queue of registered ONNX model tasks (onnxruntime)")
    )
    onnx_threads: int = field(
        default=0,
        metadata=_env(
            "PIXELAKE_ONNX_THREADS",
            "onnxruntime intra-op threads per session; 0 = the vCPUs Lambda gives the function's memory (1 per 1769 MB), else the CPUs this process may use",
        ),
    )
    max_upload_bytes: int = field(
        default=50 * 1024 * 1024, metadata=_env("PIXELAKE_MAX_UPLOAD_BYTES", "largest accepted image file")
    )
    # API Gateway + Lambda accept at most 6 MB of request payload (10 MB on API Gateway, 6 MB on Lambda).
    max_request_bytes: int = field(
        default=6 * 1024 * 1024, metadata=_env("PIXELAKE_MAX_REQUEST_BYTES", "largest request body through the API")
    )
    max_pixels: int = field(
        default=75_000_000,
        metadata=_env("PIXELAKE_MAX_PIXELS", "largest width×height decoded (decompression-bomb guard)"),
    )
    max_frames: int = field(default=200, metadata=_env("PIXELAKE_MAX_FRAMES", "most frames in an animated image"))
    thumbnail_sizes: tuple[int, ...] = field(
        default=(256, 1024),
        metadata=_env("PIXELAKE_THUMBNAIL_SIZES", "longest side of each thumbnail, comma-separated"),
    )
    ingest_analyzers: tuple[str, ...] = field(
        default=("properties", "faces", "phash"),
        metadata=_env("PIXELAKE_INGEST_ANALYZERS", "analyzers run on every upload, comma-separated"),
    )
    max_batch_images: int = field(
        default=1_000_000,
        metadata=_env(
            "PIXELAKE_MAX_BATCH_IMAGES", "most tasks one user's unfinished batches hold together (a batch's images)"
        ),
    )
    batch_partition_size: int = field(
        default=200, metadata=_env("PIXELAKE_BATCH_PARTITION_SIZE", "tasks in one Dask partition of a batch")
    )
    batch_in_flight: int = field(
        default=0,
        metadata=_env("PIXELAKE_BATCH_IN_FLIGHT", "partitions of a batch submitted at once; 0: two per worker thread"),
    )
    import_partition_keys: int = field(
        default=200,
        metadata=_env(
            "PIXELAKE_IMPORT_PARTITION_KEYS", "objects per partition of a bulk import (one Dask task ingests them)"
        ),
    )
    max_import_manifest_bytes: int = field(
        default=5 * 1024 * 1024,
        metadata=_env(
            "PIXELAKE_MAX_IMPORT_MANIFEST_BYTES",
            "largest manifest sent in a POST /api/imports body (larger: put it in S3, send manifest_key)",
        ),
    )
    max_dataset_items: int = field(
        default=100_000, metadata=_env("PIXELAKE_MAX_DATASET_ITEMS", "most items in one dataset")
    )
    training_sample_items: int = field(
        default=50_000,
        metadata=_env(
            "PIXELAKE_TRAINING_SAMPLE_ITEMS",
            "most training items a job fits in memory; larger datasets are fitted incrementally (partial_fit) or on a stratified sample of this size",
        ),
    )
    presign_expiry_s: int = field(
        default=900, metadata=_env("PIXELAKE_PRESIGN_EXPIRY", "lifetime of presigned URLs in seconds")
    )
    stats_max_age_s: int = field(
        default=-1,
        metadata=_env(
            "PIXELAKE_STATS_MAX_AGE",
            "seconds GET /api/stats may serve its summaries before refreshing them; default 60, 0 on the local stage (always fresh)",
        ),
    )
    max_wait_s: int = field(
        default=25,
        metadata=_env("PIXELAKE_MAX_WAIT", "longest ?wait= a request may ask for (API Gateway times out at 29 s)"),
    )
    auth: str = field(
        default="",
        metadata=_env(
            "PIXELAKE_AUTH",
            "off (requests act as the local user; the local stage's default) or required (every deployed stage's default and only choice)",
        ),
    )
    secret_key: str = field(
        default="",
        metadata=_env(
            "SECRET_KEY",
            "JWT signing key, at least 32 bytes (required on deployed stages; the local stage makes one per process)",
        ),
    )
    token_expiry_s: int = field(
        default=3600, metadata=_env("PIXELAKE_TOKEN_EXPIRY", "lifetime of an access token in seconds")
    )
    admin_emails: tuple[str, ...] = field(
        default=(),
        metadata=_env(
            "PIXELAKE_ADMIN_EMAILS", "emails that get the admin role when they register or sign in, comma-separated"
        ),
    )
    user_quota_bytes: int = field(
        default=10 * 1024**3,
        metadata=_env(
            "PIXELAKE_USER_QUOTA_BYTES",
            "default storage quota per user (sum of image sizes); users.quota_bytes overrides it; 0 = unlimited",
        ),
    )
    cors_origins: tuple[str, ...] = field(
        default=(),
        metadata=_env(
            "PIXELAKE_CORS_ORIGINS",
            "origins allowed to call the API from a browser, comma-separated; '*' only on the local stage (its default)",
        ),
    )
    task_max_attempts: int = field(
        default=5,
        metadata=_env(
            "PIXELAKE_TASK_MAX_ATTEMPTS",
            "deliveries of a task's message after which a transient fault fails the task instead of retrying it (keep equal to the queues' maxReceiveCount)",
        ),
    )
    task_stall_s: int = field(
        default=4500,
        metadata=_env(
            "PIXELAKE_TASK_STALL_S",
            "seconds after its last attempt started that a still-running task is reported failed: its message was dead-lettered (maxReceiveCount × the visibility timeout)",
        ),
    )
    dask_scheduler_address: str = field(
        default="", metadata=_env("DASK_SCHEDULER_ADDRESS", "Dask scheduler; empty for a local cluster")
    )
    dask_start_timeout_s: int = field(
        default=600,
        metadata=_env(
            "PIXELAKE_DASK_START_TIMEOUT_S",
            "seconds a batch or training job may stay pending (no Dask worker took it) before it is reported failed",
        ),
    )
    tmp_dir: str = field(default="/tmp/pixelake", metadata=_env("PIXELAKE_TMP", "cache for model artifacts"))
    max_model_bytes: int = field(
        default=200 * 1024 * 1024, metadata=_env("PIXELAKE_MAX_MODEL_BYTES", "largest model file registered")
    )
    # A URL on a private or loopback address reaches inside the deployment (the Lambda runtime
    # API listens on 127.0.0.1): refused outside the local stage unless allowed here.
    model_url_private: str = field(
        default="",
        metadata=_env(
            "PIXELAKE_MODEL_URL_PRIVATE",
            "allow or deny model URLs on private/loopback addresses; default allow on the local stage, deny elsewhere",
        ),
    )

    def __post_init__(self) -> None:
        derived = {
            "bucket": f"pixelake-{self.stage}",
            "uploads_queue": f"pixelake-{self.stage}-uploads",
            "tasks_queue": f"pixelake-{self.stage}-tasks",
            "ml_tasks_queue": f"pixelake-{self.stage}-ml-tasks",
            "inference_queue": f"pixelake-{self.stage}-inference",
            "model_url_private": "allow" if self.stage == "local" else "deny",
        }
        for name, value in derived.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        if self.stats_max_age_s < 0:
            object.__setattr__(self, "stats_max_age_s", 0 if self.stage == "local" else 60)
        self._secure_defaults()

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    def refuse_real_aws_on_local_stage(self) -> None:
        """The local stage runs on moto or LocalStack only: without an endpoint, boto3 would reach real AWS
        and a bucket named pixelake-local that anyone could own. Called before any S3 or SQS client is made."""
        if self.is_local and not self.aws_endpoint_url:
            raise RuntimeError(
                "PIXELAKE_STAGE=local needs AWS_ENDPOINT_URL (moto or LocalStack; `make dev` sets it): "
                "a local process never uses real AWS endpoints or bucket names"
            )

    @property
    def auth_required(self) -> bool:
        return self.auth == "required"

    def _secure_defaults(self) -> None:
        """Open access and any-origin CORS exist for a laptop only: a deployed stage refuses them."""
        if not self.auth:
            object.__setattr__(self, "auth", "off" if self.is_local else "required")
        if self.auth not in ("off", "required"):
            raise ValueError(f"PIXELAKE_AUTH must be 'off' or 'required', got {self.auth!r}")
        # Browsers send Origin without a trailing slash and compare exactly.
        object.__setattr__(self, "cors_origins", tuple(o.rstrip("/") for o in self.cors_origins))
        object.__setattr__(self, "admin_emails", tuple(e.lower() for e in self.admin_emails))
        if not self.cors_origins and self.is_local:
            object.__setattr__(self, "cors_origins", ("*",))
        if not self.is_local:
            if self.auth != "required":
                raise ValueError(f"PIXELAKE_AUTH=off is for the local stage only (stage {self.stage!r})")
            if "*" in self.cors_origins:
                raise ValueError("PIXELAKE_CORS_ORIGINS must list origins on a deployed stage, not '*'")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env: Mapping[str, str] = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None and f.name == "aws_region":
                raw = env.get("AWS_REGION")
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(raw, str(f.type))  # already a string: this module postpones annotations
        return cls(**values)


def _parse(raw: str, type_name: str):
    if type_name == "int":
        return int(float(raw))
    if type_name.startswith("tuple[int"):
        return tuple(int(v) for v in raw.split(",") if v.strip())
    if type_name.startswith("tuple[str"):
        return tuple(v.strip() for v in raw.split(",") if v.strip())
    return raw


@functools.cache
def get_settings() -> Settings:
    return Settings.from_env()


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()
