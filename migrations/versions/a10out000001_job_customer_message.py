"""jobs: customer_message (what a customer reads about a failed job; error stays for staff)

Revision ID: a10out000001
Revises: bf8cfe004313
Create Date: 2026-12-02 01:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a10out000001'
down_revision = 'bf8cfe004313'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_message', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('customer_message')
