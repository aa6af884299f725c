"""function parameters and the studio: ai_functions.parameters, jobs.params, jobs.thumbnail_ref, jobs.deleted_at

Revision ID: a16par000001
Revises: a16show00001
Create Date: 2026-12-02 04:10:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'a16par000001'
down_revision = 'a16show00001'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('ai_functions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parameters', JSON, server_default='[]', nullable=False))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('params', JSON, server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('thumbnail_ref', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('thumbnail_ref')
        batch_op.drop_column('params')
    with op.batch_alter_table('ai_functions', schema=None) as batch_op:
        batch_op.drop_column('parameters')
