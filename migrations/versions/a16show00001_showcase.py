"""prompt gallery, landing examples, showcase items and their reports

Revision ID: a16show00001
Revises: a15mail00002
Create Date: 2026-12-02 04:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'a16show00001'
down_revision = 'a15mail00002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('prompts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('prompt_text', sa.Text(), nullable=False),
    sa.Column('category', sa.String(length=32), server_default='general', nullable=False),
    sa.Column('tags', sa.String(length=500), server_default='', nullable=False),
    sa.Column('preview_ref', sa.String(length=500), nullable=True),
    sa.Column('preview_content_type', sa.String(length=64), nullable=True),
    sa.Column('function_id', sa.Integer(), nullable=True),
    sa.Column('is_featured', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('is_published', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('sort_order', sa.Integer(), server_default='0', nullable=False),
    sa.Column('usage_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['function_id'], ['ai_functions.id'], name=op.f('fk_prompts_function_id_ai_functions'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompts'))
    )
    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prompts_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_prompts_function_id'), ['function_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_prompts_is_published'), ['is_published'], unique=False)

    op.create_table('landing_examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('caption', sa.String(length=300), server_default='', nullable=False),
    sa.Column('function_id', sa.Integer(), nullable=True),
    sa.Column('before_ref', sa.String(length=500), nullable=True),
    sa.Column('before_content_type', sa.String(length=64), nullable=True),
    sa.Column('after_ref', sa.String(length=500), nullable=True),
    sa.Column('after_content_type', sa.String(length=64), nullable=True),
    sa.Column('is_published', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('sort_order', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['function_id'], ['ai_functions.id'],
                            name=op.f('fk_landing_examples_function_id_ai_functions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_landing_examples'))
    )
    with op.batch_alter_table('landing_examples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_landing_examples_function_id'), ['function_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_landing_examples_is_published'), ['is_published'], unique=False)

    op.create_table('showcase_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('function_key', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('is_blurred', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('is_deleted', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('report_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_showcase_items_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_showcase_items_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_showcase_items')),
    sa.UniqueConstraint('job_id', name=op.f('uq_showcase_items_job_id'))
    )
    with op.batch_alter_table('showcase_items', schema=None) as batch_op:
        for column in ('user_id', 'function_key', 'is_blurred', 'is_deleted', 'report_count', 'created_at'):
            batch_op.create_index(batch_op.f(f'ix_showcase_items_{column}'), [column], unique=False)

    op.create_table('showcase_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('reporter_ip', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('details', sa.String(length=500), server_default='', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'resolved', 'dismissed')",
                       name=op.f('ck_showcase_reports_status_known')),
    sa.ForeignKeyConstraint(['item_id'], ['showcase_items.id'], name=op.f('fk_showcase_reports_item_id_showcase_items'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reporter_id'], ['users.id'], name=op.f('fk_showcase_reports_reporter_id_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_showcase_reports_resolved_by_id_users'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_showcase_reports'))
    )
    with op.batch_alter_table('showcase_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_showcase_reports_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_showcase_reports_status'), ['status'], unique=False)


def downgrade():
    op.drop_table('showcase_reports')
    op.drop_table('showcase_items')
    op.drop_table('landing_examples')
    op.drop_table('prompts')
