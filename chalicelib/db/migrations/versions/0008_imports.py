"""Bulk imports of objects already in S3: the imports, the partitions counted, the files that
failed, and on each image the import that registered it.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    ]


def upgrade() -> None:
    op.create_table('imports',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('source', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('status', sa.String(length=32), server_default='pending', nullable=False),
    sa.Column('listed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('listing_done', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('partitions', sa.Integer(), server_default='0', nullable=False),
    sa.Column('partitions_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('registered', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('ready', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failed', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('skipped', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    *_timestamps(),
    sa.CheckConstraint("status IN ('pending', 'running', 'succeeded', 'completed_with_failures', 'failed')", name=op.f('ck_imports_status')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_imports_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imports'))
    )
    op.create_index(op.f('ix_imports_owner_id'), 'imports', ['owner_id'], unique=False)
    op.create_table('import_partitions',
    sa.Column('import_id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    *_timestamps(),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_import_partitions_import_id_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'number', name=op.f('pk_import_partitions'))
    )
    op.create_table('import_failures',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('import_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    *_timestamps(),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_import_failures_import_id_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_failures')),
    sa.UniqueConstraint('import_id', 'key', name=op.f('uq_import_failures_import_id_key'))
    )
    op.add_column('images', sa.Column('import_id', sa.BigInteger(), nullable=True))
    op.create_foreign_key(op.f('fk_images_import_id_imports'), 'images', 'imports', ['import_id'], ['id'], ondelete='SET NULL')
    op.create_index(op.f('ix_images_import_id'), 'images', ['import_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_images_import_id'), table_name='images')
    op.drop_constraint(op.f('fk_images_import_id_imports'), 'images', type_='foreignkey')
    op.drop_column('images', 'import_id')
    op.drop_table('import_failures')
    op.drop_table('import_partitions')
    op.drop_index(op.f('ix_imports_owner_id'), table_name='imports')
    op.drop_table('imports')
