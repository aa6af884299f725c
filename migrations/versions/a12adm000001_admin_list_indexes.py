"""admin lists at scale: composite (filter, id) indexes for the jobs, job logs, credit ledger and audit log lists,
and a user's total spend; the single-column indexes they replace are dropped

Revision ID: a12adm000001
Revises: a16par000001
Create Date: 2026-12-02 04:00:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a12adm000001'
down_revision = 'a16par000001'
branch_labels = None
depends_on = None

# (table, new index, columns): each admin filter, read newest first (id order) from one index.
CREATED = (
    ('jobs', 'ix_jobs_status_id', ['status', 'id']),
    ('jobs', 'ix_jobs_user_id_id', ['user_id', 'id']),
    ('jobs', 'ix_jobs_function_key_id', ['function_key', 'id']),
    ('jobs', 'ix_jobs_provider_key_id', ['provider_key', 'id']),
    ('jobs', 'ix_jobs_finished_at', ['finished_at']),
    ('job_logs', 'ix_job_logs_job_id_id', ['job_id', 'id']),
    ('job_logs', 'ix_job_logs_level_id', ['level', 'id']),
    ('job_logs', 'ix_job_logs_provider_key_id', ['provider_key', 'id']),
    ('job_logs', 'ix_job_logs_created_at', ['created_at']),
    ('credit_ledger', 'ix_credit_ledger_user_id_id', ['user_id', 'id']),
    ('credit_ledger', 'ix_credit_ledger_kind_id', ['kind', 'id']),
    ('audit_log', 'ix_audit_log_action_id', ['action', 'id']),
    ('audit_log', 'ix_audit_log_entity_and_id', ['entity', 'id']),
    ('audit_log', 'ix_audit_log_actor_email_id', ['actor_email', 'id']),
    ('payments', 'ix_payments_user_id_status', ['user_id', 'status']),
)
# Single-column indexes that a composite above now starts with.
REPLACED = (
    ('jobs', 'ix_jobs_status', ['status']),
    ('jobs', 'ix_jobs_user_id', ['user_id']),
    ('jobs', 'ix_jobs_function_key', ['function_key']),
    ('jobs', 'ix_jobs_provider_key', ['provider_key']),
    ('job_logs', 'ix_job_logs_job_id', ['job_id']),
    ('credit_ledger', 'ix_credit_ledger_user_id', ['user_id']),
    ('credit_ledger', 'ix_credit_ledger_kind', ['kind']),
    ('audit_log', 'ix_audit_log_action', ['action']),
    ('audit_log', 'ix_audit_log_entity', ['entity']),
)


def upgrade():
    for table, name, columns in CREATED:
        op.create_index(name, table, columns, unique=False)
    for table, name, _columns in REPLACED:
        op.drop_index(name, table_name=table)


def downgrade():
    for table, name, columns in REPLACED:
        op.create_index(name, table, columns, unique=False)
    for table, name, _columns in CREATED:
        op.drop_index(name, table_name=table)
