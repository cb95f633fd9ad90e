"""tasks that run a registered model (kind 'model')

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 00:20:00.000000
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_processing_tasks_kind"), "processing_tasks", type_="check")
    op.create_check_constraint(op.f("ck_processing_tasks_kind"), "processing_tasks",
                               "kind IN ('operation', 'analysis', 'model')")


def downgrade() -> None:
    op.execute("DELETE FROM processing_tasks WHERE kind = 'model'")
    op.drop_constraint(op.f("ck_processing_tasks_kind"), "processing_tasks", type_="check")
    op.create_check_constraint(op.f("ck_processing_tasks_kind"), "processing_tasks",
                               "kind IN ('operation', 'analysis')")
