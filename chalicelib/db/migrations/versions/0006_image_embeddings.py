"""Image embeddings for similarity search; the pgvector extension where the server has it.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# pgvector is optional: RDS and the embedded PostgreSQL have it, Debian's PostgreSQL 15 does not.
# Without the right to create it (not a superuser, not rds_superuser) the exact scan serves.
CREATE_VECTOR_IF_AVAILABLE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pgvector not created (insufficient privilege): similarity search scans exactly';
END
$$
"""


def upgrade() -> None:
    op.execute(CREATE_VECTOR_IF_AVAILABLE)
    op.create_table('image_embeddings',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('image_id', sa.BigInteger(), nullable=False),
    sa.Column('model_id', sa.BigInteger(), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=False),
    sa.Column('task_id', sa.BigInteger(), nullable=True),
    sa.Column('dimensions', sa.Integer(), nullable=False),
    sa.Column('norm', sa.Float(), nullable=False),
    sa.Column('embedding', postgresql.ARRAY(postgresql.REAL()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('dimensions > 0 AND cardinality(embedding) = dimensions', name=op.f('ck_image_embeddings_dimensions')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_embeddings_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_id'], ['ml_models.id'], name=op.f('fk_image_embeddings_model_id_ml_models'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_image_embeddings_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['processing_tasks.id'], name=op.f('fk_image_embeddings_task_id_processing_tasks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_embeddings')),
    sa.UniqueConstraint('image_id', 'model_id', name=op.f('uq_image_embeddings_image_id_model_id'))
    )
    op.create_index('ix_image_embeddings_model_id_owner_id', 'image_embeddings', ['model_id', 'owner_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_image_embeddings_model_id_owner_id', table_name='image_embeddings')
    op.drop_table('image_embeddings')
