"""payments: webhook events, subscriptions, shortfall

Revision ID: bf8cfe004313
Revises: ed2ea0b86909
Create Date: 2026-11-24 14:58:59.958305

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'bf8cfe004313'
down_revision = 'ed2ea0b86909'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('provider', 'event_id', name='provider_event')
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_events_event_type'), ['event_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_events_received_at'), ['received_at'], unique=False)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refunded_credits', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('recorded_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_payments_recorded_by_id_users'), 'users', ['recorded_by_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_shortfall', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('stripe_customer_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('subscription_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('subscription_status', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('subscription_period_end', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('subscription_event_at', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_credit_shortfall'), ['credit_shortfall'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_stripe_customer_id'), ['stripe_customer_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_users_subscription_id'), ['subscription_id'], unique=False)



def downgrade():
    # SQLite drops columns by rebuilding the table, and cannot carry the expression index over: drop it
    # first and rebuild it after (the same statements are valid on PostgreSQL).
    op.drop_index('uq_users_email_lower', table_name='users')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_subscription_id'))
        batch_op.drop_index(batch_op.f('ix_users_stripe_customer_id'))
        batch_op.drop_index(batch_op.f('ix_users_credit_shortfall'))
        batch_op.drop_column('subscription_event_at')
        batch_op.drop_column('subscription_period_end')
        batch_op.drop_column('subscription_status')
        batch_op.drop_column('subscription_id')
        batch_op.drop_column('stripe_customer_id')
        batch_op.drop_column('credit_shortfall')
    op.create_index('uq_users_email_lower', 'users', [sa.text('lower(email)')], unique=True)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_recorded_by_id_users'), type_='foreignkey')
        batch_op.drop_column('recorded_by_id')
        batch_op.drop_column('refunded_credits')

    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_received_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_events_event_type'))

    op.drop_table('webhook_events')
