"""performance: materialized statistics summaries, images by owner and status

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 01:40:00

GET /api/stats over 1,000,000 tasks took seconds (docs/benchmarks/report.md): it now reads two
materialized summaries refreshed when older than PIXELAKE_STATS_MAX_AGE. The images count by
status uses an index on (owner_id, status) instead of reading every image row.
"""
from alembic import op

# Frozen copies of models.STATISTICS_SUMMARIES / STATISTICS_SUMMARY_INDEXES as this revision made them.
SUMMARIES = {
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
INDEXES = (
    "CREATE UNIQUE INDEX uq_processing_statistics_daily ON processing_statistics_daily (owner_id, day, operation, status)",
    "CREATE UNIQUE INDEX uq_processing_statistics_totals ON processing_statistics_totals (owner_key, operation, status)",
)

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_images_owner_id_status', 'images', ['owner_id', 'status'], unique=False)
    for statement in SUMMARIES.values():
        op.execute(statement)
    for statement in INDEXES:
        op.execute(statement)


def downgrade() -> None:
    for name in SUMMARIES:
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {name}")
    op.drop_index('ix_images_owner_id_status', table_name='images')
