"""The database schema as SQLAlchemy 2 typed models.

Alembic migrations are generated from these models and `database_schema.sql` from the
migrations; a test proves the three agree. Every table has created_at/updated_at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from chalicelib.db.vocabulary import (  # re-exported: the models' vocabulary
    IMAGE_STATUSES,
    IMPORT_STATUSES,
    JOB_STATUSES,
    MODEL_FRAMEWORKS,
    MODEL_STATUSES,
    MODEL_TASKS,
    TASK_KINDS,
    TASK_STATUSES,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JSONB, list[Any]: JSONB}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ("user", "admin")), name="role"),
        Index("uq_users_lower_email", text("lower(email)"), unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), server_default="user")
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)


class ApiKey(Timestamped, Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Image(Timestamped, Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("bucket", "key"),
        CheckConstraint(_in("status", IMAGE_STATUSES), name="status"),
        Index("ix_images_owner_id_id", "owner_id", text("id DESC")),
        Index("ix_images_owner_id_status", "owner_id", "status"),  # GET /api/stats: images by status
        Index("ix_images_metadata", "metadata", postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"}),
        # Near-duplicate search by bands of the perceptual hash (chalicelib/db/images.py `similar`).
        *(
            Index(
                f"ix_images_phash_band{band}",
                "owner_id",
                text(f"((phash >> {8 * band}) & 255)"),
                postgresql_where=text("phash IS NOT NULL"),
            )
            for band in range(8)
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(String(1024))
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    etag: Mapped[str | None] = mapped_column(String(100))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    thumbnails: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    phash: Mapped[int | None] = mapped_column(BigInteger, index=True)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The bulk import that registered the image (None: an upload). A retried partition of that
    # import counts the image by its status instead of as already there.
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id", ondelete="SET NULL"), index=True)


class Batch(Timestamped, Base):
    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("owner_id", "request_hash"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    source: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    # The batch's tasks by status, kept by the BATCH_TASK_COUNTS triggers in the statement that
    # changes a task: progress is one row read, not a count over a million tasks.
    tasks_pending: Mapped[int] = mapped_column(Integer, server_default="0")
    tasks_running: Mapped[int] = mapped_column(Integer, server_default="0")
    tasks_succeeded: Mapped[int] = mapped_column(Integer, server_default="0")
    tasks_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    tasks_cancelled: Mapped[int] = mapped_column(Integer, server_default="0")
    # When every task was made: at once for a list of image ids; for a prefix or a dataset, by the
    # batch's driver on Dask, in keyset chunks (no statement outlasts the connection's timeout).
    tasks_made_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What each task runs (the resolved plan: its kind and model version), for the tasks made later.
    task_kind: Mapped[str] = mapped_column(String(16), server_default="operation")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("ml_models.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    export_key: Mapped[str | None] = mapped_column(String(1024))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProcessingTask(Timestamped, Base):
    __tablename__ = "processing_tasks"
    __table_args__ = (
        CheckConstraint(_in("status", TASK_STATUSES), name="status"),
        CheckConstraint(_in("kind", TASK_KINDS), name="kind"),
        Index("ix_processing_tasks_operation_status", "operation", "status"),
        Index("ix_processing_tasks_owner_id_id", "owner_id", text("id DESC")),
        Index("ix_processing_tasks_finished_at", "finished_at"),
        # One task per (batch, image): a resubmitted or retried batch never duplicates work.
        Index(
            "uq_processing_tasks_batch_id_image_id",
            "batch_id",
            "image_id",
            unique=True,
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
        # A batch's unfinished tasks in id order: the dispatcher's keyset pages (chalicelib.db.jobs.open_task_page).
        Index(
            "ix_processing_tasks_batch_id_id_open",
            "batch_id",
            "id",
            postgresql_where=text("batch_id IS NOT NULL AND status IN ('pending', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("ml_models.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(16), server_default="operation")
    operation: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    results: Mapped[list[Result]] = relationship(back_populates="task", order_by="Result.id")
    model: Mapped[MLModel | None] = relationship()


class Result(Timestamped, Base):
    __tablename__ = "results"
    __table_args__ = (
        CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence"),
        Index("ix_results_data", "data", postgresql_using="gin", postgresql_ops={"data": "jsonb_path_ops"}),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("processing_tasks.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    output_key: Mapped[str | None] = mapped_column(String(1024))
    output_format: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)

    task: Mapped[ProcessingTask] = relationship(back_populates="results")


class MLModel(Timestamped, Base):
    __tablename__ = "ml_models"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", "version"),
        CheckConstraint(_in("framework", MODEL_FRAMEWORKS), name="framework"),
        CheckConstraint(_in("task", MODEL_TASKS), name="task"),
        CheckConstraint(_in("status", MODEL_STATUSES), name="status"),
        # At most one active version per name and owner.
        Index("uq_ml_models_active", "owner_id", "name", unique=True, postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    framework: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(16))
    artifact_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    input_spec: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    labels: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    metrics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="inactive")
    description: Mapped[str | None] = mapped_column(Text)
    training_job_id: Mapped[int | None] = mapped_column(BigInteger)


class ImageEmbedding(Timestamped, Base):
    """One image's vector from one embedding model (chalicelib.db.embeddings): REAL[] so that
    every PostgreSQL holds it; where pgvector is installed, a per-model HNSW index on the cast
    `embedding::vector(dimensions)` serves the nearest-neighbour search."""

    __tablename__ = "image_embeddings"
    __table_args__ = (
        UniqueConstraint("image_id", "model_id"),
        Index("ix_image_embeddings_model_id_owner_id", "model_id", "owner_id"),
        CheckConstraint("dimensions > 0 AND cardinality(embedding) = dimensions", name="dimensions"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("ml_models.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("processing_tasks.id", ondelete="SET NULL"))
    dimensions: Mapped[int] = mapped_column(Integer)
    norm: Mapped[float] = mapped_column(Float)  # L2 norm, so an exact cosine scan needs one dot product per row
    embedding: Mapped[list[float]] = mapped_column(ARRAY(REAL))


class Dataset(Timestamped, Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class DatasetItem(Timestamped, Base):
    __tablename__ = "dataset_items"
    __table_args__ = (
        UniqueConstraint("dataset_id", "key"),
        Index("ix_dataset_items_dataset_id_label", "dataset_id", "label"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), index=True)
    key: Mapped[str] = mapped_column(String(1024))
    label: Mapped[str] = mapped_column(String(200))


class TrainingJob(Timestamped, Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint("progress >= 0 AND progress <= 100", name="progress"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(100))
    algorithm: Mapped[str] = mapped_column(String(50))
    features: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    test_size: Mapped[float] = mapped_column(Float, server_default="0.25")
    seed: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(16), server_default="pending", index=True)
    progress: Mapped[int] = mapped_column(Integer, server_default="0")
    stage: Mapped[str | None] = mapped_column(String(50))
    metrics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("ml_models.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Import(Timestamped, Base):
    """A bulk import of objects already in S3 (services/imports.py). The counters are added to
    as partitions finish (once per partition, `import_partitions`), so progress is one row read."""

    __tablename__ = "imports"
    __table_args__ = (CheckConstraint(_in("status", IMPORT_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    source: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(32), server_default="pending")
    listed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    listing_done: Mapped[bool] = mapped_column(server_default=text("false"))
    partitions: Mapped[int] = mapped_column(Integer, server_default="0")
    partitions_done: Mapped[int] = mapped_column(Integer, server_default="0")
    registered: Mapped[int] = mapped_column(BigInteger, server_default="0")
    ready: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    skipped: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportPartition(Timestamped, Base):
    """A partition of an import whose counts were added: a retried partition adds nothing twice."""

    __tablename__ = "import_partitions"

    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)


class ImportFailure(Timestamped, Base):
    """One file an import could not ingest, with the reason (one row per key and import)."""

    __tablename__ = "import_failures"
    __table_args__ = (UniqueConstraint("import_id", "key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1024))
    reason: Mapped[str] = mapped_column(Text)


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_user_id_created_at", "user_id", "created_at"),
        Index("ix_audit_log_action", "action"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str | None] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The statistics view: one row per (owner, day, operation, status) of tasks, with durations.
# Images by status come from `images` directly (indexed); the API filters by owner.
PROCESSING_STATISTICS_VIEW = """
CREATE OR REPLACE VIEW processing_statistics AS
SELECT
    t.owner_id,
    date_trunc('day', t.queued_at) AS day,
    t.operation,
    t.status,
    count(*) AS task_count,
    avg(t.duration_ms)::double precision AS avg_duration_ms,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms) AS p50_duration_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) AS p95_duration_ms,
    avg(r.confidence)::double precision AS avg_confidence
FROM processing_tasks t
LEFT JOIN LATERAL (
    SELECT max(confidence) AS confidence FROM results WHERE results.task_id = t.id
) r ON true
GROUP BY t.owner_id, date_trunc('day', t.queued_at), t.operation, t.status
"""


# GET /api/stats reads these summaries, not processing_statistics: aggregating a million tasks
# (with a percentile sort and a lookup of each task's results) takes seconds, reading a few
# hundred summary rows takes milliseconds (docs/benchmarks/report.md). A request that finds
# them older than PIXELAKE_STATS_MAX_AGE refreshes them (CONCURRENTLY: readers are not
# blocked); `refreshed_at` says how old they are. Unique indexes make CONCURRENTLY possible.
STATISTICS_SUMMARIES = {
    "processing_statistics_daily": """
CREATE MATERIALIZED VIEW processing_statistics_daily AS
SELECT s.*, now() AS refreshed_at FROM processing_statistics s
""",
    "processing_statistics_totals": """
CREATE MATERIALIZED VIEW processing_statistics_totals AS
SELECT coalesce(owner_id, 0) AS owner_key, operation, status, count(*) AS task_count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms,
       now() AS refreshed_at
FROM processing_tasks
GROUP BY GROUPING SETS ((owner_id, operation, status), (operation, status))
""",
}
STATISTICS_SUMMARY_INDEXES = (
    "CREATE UNIQUE INDEX uq_processing_statistics_daily ON processing_statistics_daily (owner_id, day, operation, status)",
    "CREATE UNIQUE INDEX uq_processing_statistics_totals ON processing_statistics_totals (owner_key, operation, status)",
)
# owner_key 0: every owner's tasks together (an admin's view; percentiles do not add up).


# Batch progress counters (batches.tasks_<status>): statement-level triggers on processing_tasks add
# up each statement's changes per batch and status, so an INSERT … SELECT of a million tasks or the
# cancel of the rest updates each batch row once, and a single task's transition updates it in the
# same statement (and transaction) that changes the task. Lock order is always task rows, then the
# batch row (chalicelib/db/transitions.py batch_cancelled relies on it).
BATCH_COUNTED_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
_BATCH_TASK_CHANGES = {  # trigger event → (transition table clause, the (batch_id, status, n) changes)
    "insert": ("NEW TABLE AS new_tasks", "SELECT batch_id, status, 1 AS n FROM new_tasks WHERE batch_id IS NOT NULL"),
    "delete": ("OLD TABLE AS old_tasks", "SELECT batch_id, status, -1 AS n FROM old_tasks WHERE batch_id IS NOT NULL"),
    "update": (
        "OLD TABLE AS old_tasks NEW TABLE AS new_tasks",
        (
            "SELECT nt.batch_id, change.status, change.n FROM new_tasks nt JOIN old_tasks ot ON ot.id = nt.id "
            "CROSS JOIN LATERAL (VALUES (nt.status, 1), (ot.status, -1)) AS change (status, n) "
            "WHERE nt.batch_id IS NOT NULL AND nt.status IS DISTINCT FROM ot.status"
        ),
    ),
}


def _batch_counts_statements() -> tuple[str, ...]:
    sets = ", ".join(f"tasks_{s} = b.tasks_{s} + d.{s}" for s in BATCH_COUNTED_STATUSES)
    sums = ", ".join(f"coalesce(sum(n) FILTER (WHERE status = '{s}'), 0) AS {s}" for s in BATCH_COUNTED_STATUSES)
    zeros_of_d = ", ".join(f"d.{s}" for s in BATCH_COUNTED_STATUSES)
    zeros = ", ".join("0" for _ in BATCH_COUNTED_STATUSES)
    statements = []
    for event, (referencing, changes) in _BATCH_TASK_CHANGES.items():
        statements.append(
            f"CREATE OR REPLACE FUNCTION count_batch_tasks_{event}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    UPDATE batches b SET {sets}\n"
            f"    FROM (SELECT batch_id, {sums} FROM ({changes}) c GROUP BY batch_id) d\n"
            f"    WHERE b.id = d.batch_id AND ({zeros_of_d}) <> ({zeros});\n    RETURN NULL;\nEND\n$$"
        )
        statements.append(
            f"CREATE TRIGGER batch_task_counts_{event} AFTER {event.upper()} ON processing_tasks "
            f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_{event}()"
        )
    return tuple(statements)


BATCH_TASK_COUNTS = _batch_counts_statements()
