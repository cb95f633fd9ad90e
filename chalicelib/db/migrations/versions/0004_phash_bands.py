"""Near-duplicate search: indexes on the eight 8-bit bands of images.phash (with the owner).

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BANDS = 8


def upgrade() -> None:
    for band in range(BANDS):
        op.create_index(f"ix_images_phash_band{band}", "images",
                        ["owner_id", sa.text(f"((phash >> {8 * band}) & 255)")],
                        postgresql_where=sa.text("phash IS NOT NULL"))


def downgrade() -> None:
    for band in range(BANDS):
        op.drop_index(f"ix_images_phash_band{band}", table_name="images")
