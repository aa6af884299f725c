"""Admin views over history: jobs (with retry and cancel), their log lines, the audit log and the email log
(read-only)."""
from collections import Counter

import sqlalchemy as sa
from flask import flash
from flask_admin.actions import action
from flask_login import current_user
from markupsafe import Markup

from app.admin.base import ADMIN, STAFF, ReadOnlyModelView
from app.admin.formatters import local_time
from app.admin.row_actions import RowAction
from app.extensions import db
from app.models import Job
from app.services import jobs, permissions

JOB_OPERATORS = frozenset({"admin", "support"})


def _log_lines(_view, _context, job, _name):
    if not job.logs:
        return Markup('<span class="text-muted">No log lines yet.</span>')
    rows = Markup("").join(
        Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            local_time(line.created_at), line.level, line.provider_key or "",
            line.attempt or "", "" if line.latency_ms is None else f"{line.latency_ms} ms", line.message)
        for line in job.logs
    )
    return Markup('<div class="table-responsive"><table class="table table-sm"><thead><tr><th>Time</th>'
                  '<th>Level</th><th>Provider</th><th>Attempt</th><th>Latency</th><th>Message</th></tr></thead>'
                  '<tbody>{}</tbody></table></div>').format(rows)


def _may_retry(_view, job):
    return job.status == "failed" and permissions.may_retry_job(current_user, job)


def _may_cancel(_view, job):
    return job.status in jobs.ACTIVE and permissions.may_cancel_job(current_user, job)


class JobView(ReadOnlyModelView):
    read_roles = STAFF
    export_roles = ADMIN
    action_roles = {"retry": JOB_OPERATORS, "cancel": JOB_OPERATORS}
    details_template = "admin/job_details.html"
    simple_list_pager = True  # no COUNT(*) over a million jobs: "next page" instead of a page count
    column_list = ("id", "created_at", "user", "function_key", "provider_key", "status", "credits_charged",
                   "refunded", "attempts", "finished_at")
    column_details_list = ("id", "status", "user", "function_key", "provider_key", "provider_job_id", "input_meta",
                           "params", "credits_charged", "refunded", "attempts", "claims", "error", "customer_message",
                           "created_at", "started_at", "finished_at", "deleted_at", "logs")
    column_searchable_list = ("user.email", "function_key", "provider_job_id")
    column_filters = ("status", "function_key", "provider_key", "user.email", "created_at", "refunded")
    column_labels = {"function_key": "Function", "provider_key": "Provider", "logs": "Log",
                     "customer_message": "Customer was told"}
    column_formatters_detail = {"logs": _log_lines}
    column_extra_row_actions = [
        RowAction("retry", "fa fa-repeat", "Retry (not charged again)", shown=_may_retry),
        RowAction("cancel", "fa fa-stop-circle", "Cancel", shown=_may_cancel,
                  confirm="Cancel this job? A queued job is refunded at once."),
    ]

    @action("retry", "Retry", "Retry the selected failed jobs? They are not charged again.")
    def action_retry(self, ids):
        # jobs.retry audits each job it queues again; jobs this actor may not touch are skipped.
        actor = current_user._get_current_object()
        allowed = [job.id for job in db.session.scalars(sa.select(Job).where(Job.id.in_([int(i) for i in ids])))
                   if permissions.may_retry_job(actor, job)]
        retried = [job_id for job_id in allowed if jobs.retry(job_id, actor)]
        flash(f"{len(retried)} job(s) queued again; {len(ids) - len(retried)} skipped "
              f"(only failed jobs of customers you look after can be retried).", "info")

    @action("cancel", "Cancel", "Cancel the selected jobs? Queued jobs are refunded at once.")
    def action_cancel(self, ids):
        # jobs.cancel audits each job it actually cancels; jobs this actor may not touch are skipped.
        actor = current_user._get_current_object()
        outcomes = Counter()
        for job in db.session.scalars(sa.select(Job).where(Job.id.in_([int(i) for i in ids]))).all():
            allowed = permissions.may_cancel_job(actor, job)
            outcomes[jobs.cancel(job.id, actor=actor) if allowed else "Not yours to cancel (skipped)."] += 1
        flash(" ".join(f"{count} × {message}" for message, count in outcomes.items()), "info")


class JobLogView(ReadOnlyModelView):
    """Every job's log lines in one list, to search and export across jobs (a job's page shows its own)."""

    export_roles = ADMIN
    simple_list_pager = True  # no COUNT(*) over a table that grows with every attempt
    column_list = ("id", "created_at", "job_id", "level", "provider_key", "attempt", "latency_ms", "message")
    column_searchable_list = ("message",)
    column_filters = ("job_id", "level", "provider_key", "created_at")
    column_labels = {"job_id": "Job", "provider_key": "Provider", "latency_ms": "Latency (ms)"}


class AuditLogView(ReadOnlyModelView):
    export_roles = ADMIN
    simple_list_pager = True  # every write adds a row: no COUNT(*)
    column_list = ("created_at", "actor_email", "action", "entity", "entity_id", "ip")
    column_details_list = ("created_at", "actor_email", "action", "entity", "entity_id", "old_values",
                           "new_values", "ip", "user_agent")
    column_searchable_list = ("actor_email", "entity", "entity_id")
    column_filters = ("action", "entity", "actor_email", "created_at")
    column_labels = {"actor_email": "Who", "entity_id": "Id", "ip": "IP"}
    column_export_list = ("created_at", "actor_email", "action", "entity", "entity_id", "old_values", "new_values",
                          "ip", "user_agent")


class EmailLogView(ReadOnlyModelView):
    """Every message sent or tried: addresses are personal data, so only an admin exports them."""

    export_roles = ADMIN
    column_list = ("created_at", "to_address", "template", "status", "attempts", "sent_at", "error")
    column_details_list = ("id", "created_at", "to_address", "user_id", "template", "status", "attempts", "sent_at",
                           "error")
    column_searchable_list = ("to_address", "template")
    column_filters = ("status", "template", "to_address", "created_at")
    column_labels = {"to_address": "To", "user_id": "User id"}
    column_default_sort = ("id", True)
