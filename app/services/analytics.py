"""Analytics rollups: daily rows of jobs and payments rebuilt from their source, and what the dashboard reads.

A day's rollup is recomputed whole from that day's jobs (or payments) rather than nudged by +1/-1, so a late
event (a refund days later, a retried job) can never leave it wrong: `refresh_changed` finds the days whose
rows changed since it last ran (jobs.updated_at, payments.updated_at) and rebuilds only those. The scheduler
runs it every ROLLUP_TICK_SECONDS; without Redis (make run) the dashboard runs it before reading.
"""
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Job, JobDaily, JobErrorDaily, Payment, PaymentDaily, RollupMark
from app.models.analytics import HIST_BUCKETS

# Latency histogram bucket upper bounds (ms); one more bucket holds everything slower.
LATENCY_BOUNDS = (250, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000)
# A change committed this long after its updated_at was stamped is still picked up by the next refresh.
LAG = timedelta(minutes=5)
TAKEN = ("succeeded", "refunded")  # payments that brought money in (a refunded one is shown apart)
ERROR_LENGTH = 200


def _utc_day(column):
    """The UTC calendar day of a timestamp column, in SQL, on PostgreSQL and on SQLite (make run)."""
    if db.engine.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def _milliseconds(start, end):
    if db.engine.dialect.name == "postgresql":
        return sa.func.extract("epoch", end - start) * 1000
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86_400_000


def _bucket(latency):
    """The histogram bucket of a latency expression, as SQL."""
    return sa.case(*[(latency <= bound, index) for index, bound in enumerate(LATENCY_BOUNDS)],
                   else_=len(LATENCY_BOUNDS))


def _as_date(value):
    return value if isinstance(value, date) else date.fromisoformat(value)


def _bounds(days):
    """[start, end) timestamps covering the given days."""
    first, last = min(days), max(days)
    return (datetime.combine(first, time.min, timezone.utc),
            datetime.combine(last + timedelta(days=1), time.min, timezone.utc))


def _rebuild_jobs(days):
    start, end = _bounds(days)
    day = _utc_day(Job.created_at).label("day")
    provider = sa.func.coalesce(Job.provider_key, "").label("provider")
    client_app = sa.func.coalesce(Job.app_id, 0).label("client_app")
    timed = sa.and_(Job.started_at.is_not(None), Job.finished_at.is_not(None))
    latency = _milliseconds(Job.started_at, Job.finished_at)
    bucket = sa.case((timed, _bucket(latency)), else_=None).label("bucket")
    in_range = sa.and_(Job.created_at >= start, Job.created_at < end)
    rows = db.session.execute(
        sa.select(day, Job.function_key, provider, client_app, Job.status, bucket, sa.func.count(),
                  sa.func.sum(Job.credits_charged),
                  sa.func.sum(sa.case((Job.refunded, 1), else_=0)),
                  sa.func.sum(sa.case((Job.refunded, Job.credits_charged), else_=0)),
                  sa.func.sum(sa.case((timed, latency), else_=0)))
        .where(in_range).group_by(day, Job.function_key, provider, client_app, Job.status, bucket))
    merged = {}
    for d, function_key, provider_key, app_id, status, bucket_index, n, credits, refunded, refunded_credits, ms in rows:
        d = _as_date(d)
        if d not in days:
            continue
        key = (d, function_key, provider_key, app_id, status)
        row = merged.get(key)
        if row is None:
            row = merged[key] = JobDaily(day=d, function_key=function_key, provider_key=provider_key, app_id=app_id,
                                         status=status,
                                         jobs=0, credits=0, refunded_jobs=0, refunded_credits=0, latency_count=0,
                                         latency_ms_sum=0, **{f"h{i}": 0 for i in range(HIST_BUCKETS)})
        row.jobs += n
        row.credits += int(credits or 0)
        row.refunded_jobs += int(refunded or 0)
        row.refunded_credits += int(refunded_credits or 0)
        if bucket_index is not None:
            row.latency_count += n
            row.latency_ms_sum += round(ms or 0)
            name = f"h{int(bucket_index)}"
            setattr(row, name, getattr(row, name) + n)
    db.session.execute(sa.delete(JobDaily).where(JobDaily.day.in_(days)))
    db.session.add_all(merged.values())

    # Errors: the first line of the message, cut short, so one cause is one row however it is worded after.
    errors = defaultdict(int)
    for d, provider_key, message, n in db.session.execute(
            sa.select(day, provider, Job.error, sa.func.count())
            .where(in_range, Job.status == "failed").group_by(day, provider, Job.error)):
        d = _as_date(d)
        if d in days:
            first = (message or "(no message)").strip().splitlines()[0] if (message or "").strip() else "(no message)"
            errors[(d, provider_key, first[:ERROR_LENGTH])] += n
    db.session.execute(sa.delete(JobErrorDaily).where(JobErrorDaily.day.in_(days)))
    db.session.add_all(JobErrorDaily(day=d, provider_key=p, error=e, jobs=n) for (d, p, e), n in errors.items())


def _rebuild_payments(days):
    start, end = _bounds(days)
    day = _utc_day(Payment.created_at).label("day")
    plan = sa.func.coalesce(Payment.plan_name, "").label("plan")
    earlier = aliased(Payment)
    first = ~sa.exists().where(earlier.user_id == Payment.user_id, earlier.status.in_(TAKEN),
                               sa.or_(earlier.created_at < Payment.created_at,
                                      sa.and_(earlier.created_at == Payment.created_at, earlier.id < Payment.id)))
    refunded = Payment.status == "refunded"
    rows = db.session.execute(
        sa.select(day, Payment.provider, plan, Payment.currency, sa.func.count(), sa.func.sum(Payment.amount),
                  sa.func.sum(sa.case((refunded, 1), else_=0)),
                  sa.func.sum(sa.case((refunded, Payment.amount), else_=0)),
                  sa.func.sum(Payment.credits - Payment.refunded_credits),
                  sa.func.sum(sa.case((sa.and_(Payment.user_id.is_not(None), first), 1), else_=0)))
        .where(Payment.created_at >= start, Payment.created_at < end, Payment.status.in_(TAKEN))
        .group_by(day, Payment.provider, plan, Payment.currency))
    db.session.execute(sa.delete(PaymentDaily).where(PaymentDaily.day.in_(days)))
    for d, gateway, plan_name, currency, n, gross, n_refunded, refunds, credits, firsts in rows:
        d = _as_date(d)
        if d in days:
            db.session.add(PaymentDaily(day=d, gateway=gateway, plan_name=plan_name, currency=currency, payments=n,
                                        gross=int(gross or 0), refunded_payments=int(n_refunded or 0),
                                        refunds=int(refunds or 0), credits_sold=int(credits or 0),
                                        first_purchases=int(firsts or 0)))


SOURCES = {"jobs": (Job, _rebuild_jobs), "payments": (Payment, _rebuild_payments)}


def _changed_days(model, since):
    query = sa.select(_utc_day(model.created_at)).distinct()
    if since is not None:
        query = query.where(model.updated_at > since)
    return {_as_date(d) for d in db.session.scalars(query)}


def _rebuild(rebuild, days, span=31):
    """Rebuild the days in groups no wider than `span` days, so each group reads one bounded index range."""
    group = []
    for d in sorted(days):
        if group and (d - group[0]).days >= span:
            rebuild(set(group))
            group = []
        group.append(d)
    if group:
        rebuild(set(group))


def _mark(source):
    """The source's mark, locked for this transaction so refreshes run one at a time (PostgreSQL)."""
    db.session.execute(sa.insert(RollupMark).from_select(
        ["source", "read_until"],
        sa.select(sa.literal(source), sa.null()).where(~sa.exists().where(RollupMark.source == source))))
    return db.session.scalars(sa.select(RollupMark).where(RollupMark.source == source).with_for_update()).one()


def refresh_if_unscheduled():
    """Readers of the rollups call this first: without Redis there is no scheduler (make run), so the changed
    days are brought up to date here; with one, the scheduler's tick keeps them current."""
    if not current_app.config["REDIS_URL"]:
        refresh_changed()


def refresh_changed():
    """Rebuild the rollup days whose jobs or payments changed since the last refresh; commits.

    Returns {source: days rebuilt}. Cheap when nothing changed: one index range read per source."""
    rebuilt = {}
    for source, (model, rebuild) in SOURCES.items():
        # Unlocked look first: on a quiet system nothing is locked or written (the dashboard calls this).
        seen = db.session.get(RollupMark, source)
        if seen is not None and seen.read_until is not None and not db.session.scalar(
                sa.select(sa.exists().where(model.updated_at > seen.read_until - LAG))):
            rebuilt[source] = 0
            continue
        started = datetime.now(timezone.utc)
        mark = _mark(source)
        since = mark.read_until - LAG if mark.read_until else None
        days = _changed_days(model, since)
        _rebuild(rebuild, days)
        mark.read_until = started
        db.session.commit()
        rebuilt[source] = len(days)
    return rebuilt


def backfill(since=None, until=None):
    """Rebuild every rollup day from the source tables (or only the days from since to until); commits.

    For a new install on an old database, or after fixing data by hand. Returns {source: days rebuilt}."""
    rebuilt = {}
    for source, (model, rebuild) in SOURCES.items():
        started = datetime.now(timezone.utc)
        mark = _mark(source)
        # Days with source rows, and days with rollups whose source rows are gone (cleared by the rebuild).
        days = _changed_days(model, None) | set(map(_as_date, db.session.scalars(
            sa.select(ROLLUPS[source].day).distinct())))
        days = {d for d in days if (not since or d >= since) and (not until or d <= until)}
        _rebuild(rebuild, days)
        if not (since or until):
            mark.read_until = started
        db.session.commit()
        rebuilt[source] = len(days)
    return rebuilt


ROLLUPS = {"jobs": JobDaily, "payments": PaymentDaily}


def percentile(hist, fraction):
    """The upper bound (ms) of the histogram bucket holding the given fraction of jobs; None if empty.

    The last bucket has no bound: it answers the largest bound, read as "slower than"."""
    total = sum(hist)
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for index, n in enumerate(hist):
        seen += n
        if seen >= wanted:
            return LATENCY_BOUNDS[min(index, len(LATENCY_BOUNDS) - 1)]
    return LATENCY_BOUNDS[-1]


def hist_sums():
    """SQL sums of JobDaily's histogram columns, in bucket order."""
    return [sa.func.sum(getattr(JobDaily, f"h{i}")) for i in range(HIST_BUCKETS)]


def merge_hist(hists):
    out = [0] * (len(LATENCY_BOUNDS) + 1)
    for hist in hists:
        for index, n in enumerate(hist or ()):
            out[index] += n
    return out
