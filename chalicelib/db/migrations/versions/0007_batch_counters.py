"""Batches without a size cap: per-batch task counters kept by triggers, `cancelled` tasks, and an
index of each batch's unfinished tasks for the dispatcher's keyset pages, and `tasks_made_at` (the
tasks of a prefix or dataset are made by the batch's driver, in chunks).

Revision ID: 0007
Revises: 0006

GET /api/batches/{id} counted a batch's tasks by status (a scan of a million rows at the cap this
removes); the counts now live on the batch row, updated by statement-level triggers on
processing_tasks in the statement that changes a task (chalicelib/db/tables.py BATCH_TASK_COUNTS).
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")

# Frozen copy of tables.BATCH_TASK_COUNTS as this revision made it.
BATCH_TASK_COUNTS = (
    "CREATE OR REPLACE FUNCTION count_batch_tasks_insert() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    UPDATE batches b SET tasks_pending = b.tasks_pending + d.pending, tasks_running = b.tasks_running + d.running, tasks_succeeded = b.tasks_succeeded + d.succeeded, tasks_failed = b.tasks_failed + d.failed, tasks_cancelled = b.tasks_cancelled + d.cancelled\n    FROM (SELECT batch_id, coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending, coalesce(sum(n) FILTER (WHERE status = 'running'), 0) AS running, coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS succeeded, coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed, coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled FROM (SELECT batch_id, status, 1 AS n FROM new_tasks WHERE batch_id IS NOT NULL) c GROUP BY batch_id) d\n    WHERE b.id = d.batch_id AND (d.pending, d.running, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0);\n    RETURN NULL;\nEND\n$$",
    'CREATE TRIGGER batch_task_counts_insert AFTER INSERT ON processing_tasks REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_insert()',
    "CREATE OR REPLACE FUNCTION count_batch_tasks_delete() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    UPDATE batches b SET tasks_pending = b.tasks_pending + d.pending, tasks_running = b.tasks_running + d.running, tasks_succeeded = b.tasks_succeeded + d.succeeded, tasks_failed = b.tasks_failed + d.failed, tasks_cancelled = b.tasks_cancelled + d.cancelled\n    FROM (SELECT batch_id, coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending, coalesce(sum(n) FILTER (WHERE status = 'running'), 0) AS running, coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS succeeded, coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed, coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled FROM (SELECT batch_id, status, -1 AS n FROM old_tasks WHERE batch_id IS NOT NULL) c GROUP BY batch_id) d\n    WHERE b.id = d.batch_id AND (d.pending, d.running, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0);\n    RETURN NULL;\nEND\n$$",
    'CREATE TRIGGER batch_task_counts_delete AFTER DELETE ON processing_tasks REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_delete()',
    "CREATE OR REPLACE FUNCTION count_batch_tasks_update() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n    UPDATE batches b SET tasks_pending = b.tasks_pending + d.pending, tasks_running = b.tasks_running + d.running, tasks_succeeded = b.tasks_succeeded + d.succeeded, tasks_failed = b.tasks_failed + d.failed, tasks_cancelled = b.tasks_cancelled + d.cancelled\n    FROM (SELECT batch_id, coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending, coalesce(sum(n) FILTER (WHERE status = 'running'), 0) AS running, coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS succeeded, coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed, coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled FROM (SELECT nt.batch_id, change.status, change.n FROM new_tasks nt JOIN old_tasks ot ON ot.id = nt.id CROSS JOIN LATERAL (VALUES (nt.status, 1), (ot.status, -1)) AS change (status, n) WHERE nt.batch_id IS NOT NULL AND nt.status IS DISTINCT FROM ot.status) c GROUP BY batch_id) d\n    WHERE b.id = d.batch_id AND (d.pending, d.running, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0);\n    RETURN NULL;\nEND\n$$",
    'CREATE TRIGGER batch_task_counts_update AFTER UPDATE ON processing_tasks REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_update()',
)


def upgrade() -> None:
    for status in STATUSES:
        op.add_column("batches", sa.Column(f"tasks_{status}", sa.Integer(), server_default="0", nullable=False))
    op.add_column("batches", sa.Column("tasks_made_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE batches SET tasks_made_at = created_at")
    op.add_column("batches", sa.Column("task_kind", sa.String(length=16), server_default="operation", nullable=False))
    op.add_column("batches", sa.Column("model_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_batches_model_id_ml_models"), "batches", "ml_models", ["model_id"], ["id"], ondelete="SET NULL"
    )
    op.drop_constraint(op.f("ck_processing_tasks_status"), "processing_tasks", type_="check")
    op.create_check_constraint(
        op.f("ck_processing_tasks_status"),
        "processing_tasks",
        "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')",
    )
    op.create_index(
        "ix_processing_tasks_batch_id_id_open",
        "processing_tasks",
        ["batch_id", "id"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL AND status IN ('pending', 'running')"),
    )
    # The batches made before this revision: counted once, here.
    op.execute(
        "UPDATE batches b SET "
        + ", ".join(f"tasks_{s} = c.{s}" for s in STATUSES)
        + " FROM (SELECT batch_id, "
        + ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES)
        + " FROM processing_tasks WHERE batch_id IS NOT NULL GROUP BY batch_id) c WHERE b.id = c.batch_id"
    )
    for statement in BATCH_TASK_COUNTS:
        op.execute(statement)


def downgrade() -> None:
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS batch_task_counts_{event} ON processing_tasks")
        op.execute(f"DROP FUNCTION IF EXISTS count_batch_tasks_{event}()")
    op.drop_index("ix_processing_tasks_batch_id_id_open", table_name="processing_tasks")
    op.execute("UPDATE processing_tasks SET status = 'failed', error = 'cancelled' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_processing_tasks_status"), "processing_tasks", type_="check")
    op.create_check_constraint(
        op.f("ck_processing_tasks_status"), "processing_tasks", "status IN ('pending', 'running', 'succeeded', 'failed')"
    )
    op.drop_constraint(op.f("fk_batches_model_id_ml_models"), "batches", type_="foreignkey")
    op.drop_column("batches", "model_id")
    op.drop_column("batches", "task_kind")
    op.drop_column("batches", "tasks_made_at")
    for status in STATUSES:
        op.drop_column("batches", f"tasks_{status}")
