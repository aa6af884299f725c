"""analytics rollups, page views, alerts: daily rollups of jobs and payments (read by the dashboard instead of
scanning jobs), an updated_at on jobs and payments so the rollups re-read only changed days, page view counts
and alert incidents

Revision ID: a12dash00001
Revises: a14api000001
Create Date: 2026-12-02 04:00:32.173251

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'a12dash00001'
down_revision = 'a14api000001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=False),
    sa.Column('open_key', sa.String(length=160), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notify_error', sa.String(length=300), nullable=True),
    sa.CheckConstraint("kind IN ('provider_failure_rate', 'provider_health', 'queue_wait', 'credit_adjustment', 'backup_failed')", name=op.f('ck_alerts_kind_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('open_key', name=op.f('uq_alerts_open_key'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_opened_at'), ['opened_at'], unique=False)

    op.create_table('job_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('function_key', sa.String(length=64), nullable=False),
    sa.Column('provider_key', sa.String(length=64), nullable=False),
    sa.Column('app_id', sa.Integer(), server_default='0', nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('jobs', sa.Integer(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('refunded_jobs', sa.Integer(), nullable=False),
    sa.Column('refunded_credits', sa.BigInteger(), nullable=False),
    sa.Column('latency_count', sa.Integer(), nullable=False),
    sa.Column('latency_ms_sum', sa.BigInteger(), nullable=False),
    sa.Column('h0', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h1', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h2', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h3', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h4', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h5', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h6', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h7', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h8', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h9', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h10', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h11', sa.Integer(), server_default='0', nullable=False),
    sa.Column('h12', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('day', 'function_key', 'provider_key', 'app_id', 'status', name=op.f('pk_job_daily'))
    )
    op.create_table('job_error_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('provider_key', sa.String(length=64), nullable=False),
    sa.Column('error', sa.String(length=200), nullable=False),
    sa.Column('jobs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'provider_key', 'error', name=op.f('pk_job_error_daily'))
    )
    op.create_table('page_view_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('views', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'path', name=op.f('pk_page_view_daily'))
    )
    op.create_table('payment_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('gateway', sa.String(length=16), nullable=False),
    sa.Column('plan_name', sa.String(length=120), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('payments', sa.Integer(), nullable=False),
    sa.Column('gross', sa.BigInteger(), nullable=False),
    sa.Column('refunded_payments', sa.Integer(), nullable=False),
    sa.Column('refunds', sa.BigInteger(), nullable=False),
    sa.Column('credits_sold', sa.BigInteger(), nullable=False),
    sa.Column('first_purchases', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'gateway', 'plan_name', 'currency', name=op.f('pk_payment_daily'))
    )
    op.create_table('rollup_marks',
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('read_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source', name=op.f('pk_rollup_marks'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False))
        batch_op.create_index(batch_op.f('ix_jobs_updated_at'), ['updated_at'], unique=False)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False))
        batch_op.create_index(batch_op.f('ix_payments_updated_at'), ['updated_at'], unique=False)



def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_updated_at'))
        batch_op.drop_column('updated_at')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_updated_at'))
        batch_op.drop_column('updated_at')

    op.drop_table('rollup_marks')
    op.drop_table('payment_daily')
    op.drop_table('page_view_daily')
    op.drop_table('job_error_daily')
    op.drop_table('job_daily')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_opened_at'))
        batch_op.drop_index(batch_op.f('ix_alerts_kind'))

    op.drop_table('alerts')
