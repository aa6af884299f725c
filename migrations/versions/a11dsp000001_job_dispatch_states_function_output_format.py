"""jobs: dispatch states (submitting, waiting, fetching), chain step, remote state, webhook token, deadline,
rescues; ai_functions: output format and quality

Revision ID: a11dsp000001
Revises: a13bak000001
Create Date: 2026-12-02 01:20:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'a11dsp000001'
down_revision = 'a13bak000001'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('queued', 'processing', 'done', 'failed', 'cancelled')"
NEW_STATUSES = ("status IN ('queued', 'processing', 'submitting', 'waiting', 'fetching', 'done', 'failed', "
                "'cancelled')")


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', NEW_STATUSES)
        batch_op.add_column(sa.Column('step', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('step_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('rescues', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('remote_state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                                      nullable=True))
        batch_op.add_column(sa.Column('webhook_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('ai_functions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_format', sa.String(length=8), server_default='PNG', nullable=False))
        batch_op.add_column(sa.Column('output_quality', sa.Integer(), server_default='90', nullable=False))
        batch_op.create_check_constraint('output_format_known', "output_format IN ('PNG', 'WEBP', 'JPEG')")
        batch_op.create_check_constraint('output_quality_range', 'output_quality BETWEEN 1 AND 100')


def downgrade():
    with op.batch_alter_table('ai_functions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ai_functions_output_quality_range'), type_='check')
        batch_op.drop_constraint(op.f('ck_ai_functions_output_format_known'), type_='check')
        batch_op.drop_column('output_quality')
        batch_op.drop_column('output_format')
    op.execute("UPDATE jobs SET status = 'processing' WHERE status IN ('submitting', 'waiting', 'fetching')")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('deadline_at')
        batch_op.drop_column('webhook_token')
        batch_op.drop_column('remote_state')
        batch_op.drop_column('rescues')
        batch_op.drop_column('step_attempts')
        batch_op.drop_column('step')
        batch_op.drop_constraint(op.f('ck_jobs_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', OLD_STATUSES)
