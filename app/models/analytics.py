"""Analytics: daily rollups the dashboard reads (never the jobs table), page views and alert incidents.

Rollup rows are derived data: services/analytics.py rebuilds a day's rows from its jobs and payments, so a
rollup can always be recomputed (flask analytics-backfill) and never needs a correction of its own.
"""
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import utcnow


class JobDaily(db.Model):
    """Jobs created on one UTC day, per function × provider × client app × status."""

    __tablename__ = "job_daily"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    function_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    provider_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # "" when none was chosen
    # The client app that submitted the jobs through the REST API, 0 for the site's own customers. No foreign
    # key: a deleted app's history stays in the figures.
    app_id: Mapped[int] = mapped_column(primary_key=True, default=0, server_default="0")
    status: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(default=0)
    credits: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # charged
    refunded_jobs: Mapped[int] = mapped_column(default=0)
    refunded_credits: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    latency_count: Mapped[int] = mapped_column(default=0)  # jobs with a start and a finish time
    latency_ms_sum: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # A latency histogram: jobs per analytics.LATENCY_BOUNDS bucket, one column each so SQL can add them up
    # over any range; percentiles are read from the sums.
    h0: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 250 ms
    h1: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 500 ms
    h2: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 1,000 ms
    h3: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 2,000 ms
    h4: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 5,000 ms
    h5: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 10,000 ms
    h6: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 20,000 ms
    h7: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 30,000 ms
    h8: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 60,000 ms
    h9: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 120,000 ms
    h10: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 300,000 ms
    h11: Mapped[int] = mapped_column(default=0, server_default="0")  # ≤ 600,000 ms
    h12: Mapped[int] = mapped_column(default=0, server_default="0")  # slower

    @property
    def latency_hist(self):
        return [getattr(self, f"h{i}") for i in range(HIST_BUCKETS)]


HIST_BUCKETS = 13


class JobErrorDaily(db.Model):
    """Failed jobs created on one UTC day, per provider × error message (its first line, cut short)."""

    __tablename__ = "job_error_daily"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    provider_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    error: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    jobs: Mapped[int] = mapped_column(default=0)


class PaymentDaily(db.Model):
    """Payments taken on one UTC day (succeeded, or refunded since), per gateway × plan × currency."""

    __tablename__ = "payment_daily"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    gateway: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    plan_name: Mapped[str] = mapped_column(sa.String(120), primary_key=True)  # "" for credits without a plan
    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    payments: Mapped[int] = mapped_column(default=0)
    gross: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # minor units
    refunded_payments: Mapped[int] = mapped_column(default=0)
    refunds: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # minor units of the refunded payments
    credits_sold: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # less credits taken back by refunds
    first_purchases: Mapped[int] = mapped_column(default=0)  # the buyer's first payment ever


class RollupMark(db.Model):
    """How far each rollup has read its source's `updated_at` (and the lock refreshes take in turn)."""

    __tablename__ = "rollup_marks"

    source: Mapped[str] = mapped_column(sa.String(16), primary_key=True)  # jobs | payments
    read_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PageViewDaily(db.Model):
    """Views of a public page on one UTC day: a path and a number, nothing about the visitor."""

    __tablename__ = "page_view_daily"

    day: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    path: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    views: Mapped[int] = mapped_column(sa.BigInteger, default=0)


ALERT_KINDS = ("provider_failure_rate", "provider_health", "queue_wait", "credit_adjustment", "backup_failed")


class Alert(db.Model):
    """One incident: opened when its condition starts, resolved when it ends, posted to the webhook at both."""

    __tablename__ = "alerts"
    __table_args__ = (sa.CheckConstraint(f"kind IN {ALERT_KINDS!r}", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    subject: Mapped[str] = mapped_column(sa.String(120))  # provider key, queue name, ledger row, "backup"
    # "<kind>:<subject>" while open (unique: one open incident per condition); a one-off event keeps its own
    # key forever. Cleared on resolve, so the same condition can open a new incident later.
    open_key: Mapped[str | None] = mapped_column(sa.String(160), unique=True)
    message: Mapped[str] = mapped_column(sa.String(500))
    opened_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    notify_error: Mapped[str | None] = mapped_column(sa.String(300))  # the webhook's last failure, for the owner
