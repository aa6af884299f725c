"""Jobs: one customer request to run an AI function on one image, and its log lines.

A job copies the function and provider keys it ran with so history survives their deletion.
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import JSONType, utcnow

# processing: a call answered within the worker (local operations, synchronous APIs); submitting → waiting →
# fetching: a remote job, submitted, then finished by a webhook or a scheduled poll, then downloaded.
JOB_STATUSES = ("queued", "processing", "submitting", "waiting", "fetching", "done", "failed", "cancelled")


class Job(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status_known"),
        # The admin's Jobs list: each filter, newest first (id order), read from one index without a sort.
        sa.Index("ix_jobs_status_id", "status", "id"),
        sa.Index("ix_jobs_user_id_id", "user_id", "id"),
        sa.Index("ix_jobs_function_key_id", "function_key", "id"),
        sa.Index("ix_jobs_provider_key_id", "provider_key", "id"),
        # An API submit counts its app's unfinished jobs (the jobs-in-flight limit); lists filter by app.
        sa.Index("ix_jobs_app_id_status", "app_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    function_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("ai_functions.id", ondelete="SET NULL"), index=True
    )
    function_key: Mapped[str] = mapped_column(sa.String(64))
    provider_id: Mapped[int | None] = mapped_column(sa.ForeignKey("providers.id", ondelete="SET NULL"), index=True)
    provider_key: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    input_ref: Mapped[str | None] = mapped_column(sa.String(500))
    output_ref: Mapped[str | None] = mapped_column(sa.String(500))
    input_meta: Mapped[dict] = mapped_column(JSONType, default=dict)
    output_content_type: Mapped[str | None] = mapped_column(sa.String(64))
    provider_job_id: Mapped[str | None] = mapped_column(sa.String(128))  # the remote id, for support
    credits_charged: Mapped[int] = mapped_column(default=0)
    refunded: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    attempts: Mapped[int] = mapped_column(default=0)  # provider calls made
    # Each worker run claims the job; the claim number fences a run the reaper has given up on.
    claims: Mapped[int] = mapped_column(default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Where the job is in its function's provider chain, and attempts made on that step so far.
    step: Mapped[int] = mapped_column(default=0, server_default="0")
    step_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    rescues: Mapped[int] = mapped_column(default=0, server_default="0")  # times the reaper resumed it
    remote_state: Mapped[dict | None] = mapped_column(JSONType)  # what the plugin needs to poll its remote job
    webhook_token: Mapped[str | None] = mapped_column(sa.String(64))  # unguessable, in the webhook URL
    deadline_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))  # the remote attempt's timeout
    # The parameter values the customer chose, as checked against the function's definition (a second image is
    # {"file": storage ref, "content_type": …}); sent to the provider as `params` when the job runs.
    params: Mapped[dict] = mapped_column(JSONType, default=dict, server_default="{}")
    thumbnail_ref: Mapped[str | None] = mapped_column(sa.String(500))  # the gallery's small copy of the output
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))  # the customer removed it
    error: Mapped[str | None] = mapped_column(sa.Text)  # for staff: may name the provider, URLs, its answer
    customer_message: Mapped[str | None] = mapped_column(sa.String(300))  # plain words for the customer
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)

    # Submitted through the REST API by this client app; its webhook goes to webhook_url or the app's.
    app_id: Mapped[int | None] = mapped_column(sa.ForeignKey("apps.id", ondelete="SET NULL"))
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2000))
    # Set on every write (Core UPDATEs too): the analytics rollups re-read the days of jobs changed since.
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow,
                                                 server_default=sa.func.now(), index=True)

    user = relationship("User", lazy="joined")
    function = relationship("AIFunction", lazy="joined")
    provider = relationship("Provider", lazy="joined")
    logs = relationship("JobLog", back_populates="job", order_by="JobLog.id", passive_deletes=True)

    def __str__(self):
        return f"Job #{self.id} ({self.function_key}, {self.status})"


class JobLog(db.Model):
    __tablename__ = "job_logs"
    __table_args__ = (
        # The admin's Job logs list and a job's own log: each filter in id order from one index.
        sa.Index("ix_job_logs_job_id_id", "job_id", "id"),
        sa.Index("ix_job_logs_level_id", "level", "id"),
        sa.Index("ix_job_logs_provider_key_id", "provider_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    level: Mapped[str] = mapped_column(sa.String(8), default="info")
    message: Mapped[str] = mapped_column(sa.Text)
    provider_key: Mapped[str | None] = mapped_column(sa.String(64))
    attempt: Mapped[int | None]
    latency_ms: Mapped[int | None]

    job = relationship("Job", back_populates="logs")
