"""customer lifecycle: email log, email verification, the job-failed email opt-out, deleted accounts,
coupons and their uses, referrals

Revision ID: a15life00001
Revises: a11dsp000001
Create Date: 2026-12-02 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'a15life00001'
down_revision = 'a11dsp000001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('email_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'sent', 'failed')", name=op.f('ck_email_log_status_known')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_email_log_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_log'))
    )
    with op.batch_alter_table('email_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_log_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_log_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_log_template'), ['template'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_log_to_address'), ['to_address'], unique=False)
        batch_op.create_index(batch_op.f('ix_email_log_user_id'), ['user_id'], unique=False)

    op.create_table('coupons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('credits', sa.Integer(), server_default='0', nullable=False),
    sa.Column('percent_off', sa.Integer(), server_default='0', nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=True),
    sa.Column('stripe_coupon_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('credits', 'percent')", name=op.f('ck_coupons_kind_known')),
    sa.CheckConstraint('credits >= 0 AND percent_off >= 0 AND percent_off <= 100', name=op.f('ck_coupons_amounts_in_range')),
    sa.CheckConstraint('max_uses IS NULL OR uses <= max_uses', name=op.f('ck_coupons_uses_within_max')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_coupons_plan_id_plans'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code'))
    )
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coupons_batch'), ['batch'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupons_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupons_plan_id'), ['plan_id'], unique=False)

    op.create_table('coupon_redemptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coupon_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_coupon_redemptions_coupon_id_coupons'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_coupon_redemptions_order_id_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_coupon_redemptions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_redemptions')),
    sa.UniqueConstraint('coupon_id', 'user_id', name='once_per_customer')
    )
    with op.batch_alter_table('coupon_redemptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coupon_redemptions_coupon_id'), ['coupon_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupon_redemptions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupon_redemptions_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupon_redemptions_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('coupon_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_coupon_id'), ['coupon_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_orders_coupon_id_coupons'), 'coupons', ['coupon_id'], ['id'],
                                    ondelete='SET NULL')

    # SQLite's batch mode may rebuild the table and cannot reflect the expression index: drop and restore it.
    op.drop_index('uq_users_email_lower', table_name='users')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('email_job_failed', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('referral_code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('referred_by_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_referred_by_id'), ['referred_by_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_users_referral_code'), ['referral_code'])
        batch_op.create_foreign_key(batch_op.f('fk_users_referred_by_id_users'), 'users', ['referred_by_id'], ['id'],
                                    ondelete='SET NULL')
    op.create_index('uq_users_email_lower', 'users', [sa.text('lower(email)')], unique=True)


def downgrade():
    op.drop_index('uq_users_email_lower', table_name='users')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_users_referred_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_users_referral_code'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_users_referred_by_id'))
        batch_op.drop_column('referred_by_id')
        batch_op.drop_column('referral_code')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('email_job_failed')
        batch_op.drop_column('email_verified_at')
    op.create_index('uq_users_email_lower', 'users', [sa.text('lower(email)')], unique=True)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_coupon_id_coupons'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_orders_coupon_id'))
        batch_op.drop_column('coupon_id')

    with op.batch_alter_table('coupon_redemptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coupon_redemptions_user_id'))
        batch_op.drop_index(batch_op.f('ix_coupon_redemptions_order_id'))
        batch_op.drop_index(batch_op.f('ix_coupon_redemptions_created_at'))
        batch_op.drop_index(batch_op.f('ix_coupon_redemptions_coupon_id'))
    op.drop_table('coupon_redemptions')

    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coupons_plan_id'))
        batch_op.drop_index(batch_op.f('ix_coupons_created_at'))
        batch_op.drop_index(batch_op.f('ix_coupons_batch'))
    op.drop_table('coupons')

    with op.batch_alter_table('email_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_log_user_id'))
        batch_op.drop_index(batch_op.f('ix_email_log_to_address'))
        batch_op.drop_index(batch_op.f('ix_email_log_template'))
        batch_op.drop_index(batch_op.f('ix_email_log_status'))
        batch_op.drop_index(batch_op.f('ix_email_log_created_at'))

    op.drop_table('email_log')
