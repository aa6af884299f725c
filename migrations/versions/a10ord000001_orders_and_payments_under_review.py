"""orders, and payments under review

Revision ID: a10ord000001
Revises: a10out000001
Create Date: 2026-12-02 01:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10ord000001'
down_revision = 'a10out000001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('plan_name', sa.String(length=120), nullable=False),
    sa.Column('plan_kind', sa.String(length=16), nullable=False),
    sa.Column('gateway', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('credits', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('gateway_reference', sa.String(length=255), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("gateway IN ('stripe', 'paypal')", name=op.f('ck_orders_gateway_known')),
    sa.CheckConstraint("status IN ('pending', 'paid', 'failed')", name=op.f('ck_orders_status_known')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_orders_plan_id_plans'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_orders_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_gateway'), ['gateway'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_gateway_reference'), ['gateway_reference'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('review_reason', sa.String(length=500), nullable=True))
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=True)
        batch_op.drop_constraint(batch_op.f('ck_payments_status_known'), type_='check')
        batch_op.create_check_constraint(
            'status_known', "status IN ('pending', 'succeeded', 'failed', 'refunded', 'review')")
        batch_op.create_index(batch_op.f('ix_payments_order_id'), ['order_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_payments_order_id_orders'), 'orders', ['order_id'], ['id'],
                                    ondelete='SET NULL')

    # The gateways' API hosts come from the environment now: settings saved before may not redirect keys.
    op.execute("DELETE FROM settings WHERE key IN ('payments.stripe_api_base', 'payments.paypal_api_base')")


def downgrade():
    # Payments under review or without a buyer did not exist before: they go with the columns that held them.
    op.execute("DELETE FROM payments WHERE status = 'review' OR user_id IS NULL")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_order_id_orders'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_payments_order_id'))
        batch_op.drop_constraint(batch_op.f('ck_payments_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('pending', 'succeeded', 'failed', 'refunded')")
        batch_op.alter_column('user_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('review_reason')
        batch_op.drop_column('order_id')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_user_id'))
        batch_op.drop_index(batch_op.f('ix_orders_status'))
        batch_op.drop_index(batch_op.f('ix_orders_plan_id'))
        batch_op.drop_index(batch_op.f('ix_orders_gateway_reference'))
        batch_op.drop_index(batch_op.f('ix_orders_gateway'))
        batch_op.drop_index(batch_op.f('ix_orders_created_at'))

    op.drop_table('orders')
