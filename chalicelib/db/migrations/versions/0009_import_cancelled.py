"""Imports: the `cancelled` status, for an import its owner cancelled (POST /api/imports/{id}/cancel).

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_imports_status"), "imports", type_="check")
    op.create_check_constraint(
        op.f("ck_imports_status"),
        "imports",
        "status IN ('pending', 'running', 'succeeded', 'completed_with_failures', 'failed', 'cancelled')",
    )


def downgrade() -> None:
    op.execute("UPDATE imports SET status = 'failed', error = 'cancelled' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_imports_status"), "imports", type_="check")
    op.create_check_constraint(
        op.f("ck_imports_status"),
        "imports",
        "status IN ('pending', 'running', 'succeeded', 'completed_with_failures', 'failed')",
    )
