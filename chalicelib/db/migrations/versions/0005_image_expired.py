"""Images: the `expired` status, for a presigned upload whose file never arrived in time.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_images_status"), "images", type_="check")
    op.create_check_constraint(
        op.f("ck_images_status"), "images", "status IN ('pending', 'processing', 'ready', 'failed', 'expired')"
    )


def downgrade() -> None:
    op.execute("UPDATE images SET status = 'failed', error = 'the upload never arrived' WHERE status = 'expired'")
    op.drop_constraint(op.f("ck_images_status"), "images", type_="check")
    op.create_check_constraint(op.f("ck_images_status"), "images", "status IN ('pending', 'processing', 'ready', 'failed')")
