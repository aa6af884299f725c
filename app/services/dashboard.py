"""The admin home's figures for a date range: business panels from the rollups (never a scan of jobs) and
operational panels (queue, failures, recent jobs) from RQ and small indexed reads.

Each chart is a `Chart`: the table a person reads under the canvas, the series the canvas draws and the CSV
a person downloads are one and the same rows.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import (Alert, ClientApp, Job, JobDaily, JobErrorDaily, PageViewDaily, Payment, PaymentDaily, Plan,
                        Provider, User)
from app.services import analytics, jobs, referrals

RANGES = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "12m": "Last 12 months",
          "custom": "Custom"}
MAX_CUSTOM_DAYS = 3 * 366
# Who sees which half: support works the queue; the business half is for the owner and viewers.
BUSINESS_ROLES = ("admin", "viewer")
OPERATIONS_ROLES = ("admin", "support", "viewer")


class RangeError(ValueError):
    """A custom range a person must correct."""


@dataclass(frozen=True)
class Range:
    key: str
    start: date
    end: date  # included

    @property
    def days(self):
        return (self.end - self.start).days + 1

    @property
    def monthly(self):
        return self.days > 92

    @property
    def label(self):
        if self.key == "custom":
            return f"{self.start.isoformat()} to {self.end.isoformat()}"
        return RANGES[self.key]

    def params(self):
        if self.key == "custom":
            return {"range": "custom", "start": self.start.isoformat(), "end": self.end.isoformat()}
        return {"range": self.key}

    def timestamps(self):
        return (datetime.combine(self.start, time.min, timezone.utc),
                datetime.combine(self.end + timedelta(days=1), time.min, timezone.utc))


def parse_range(args, today=None):
    """The range a request asks for (default: the last 30 days). RangeError for a custom range to fix."""
    today = today or datetime.now(timezone.utc).date()
    key = args.get("range") or "30d"
    if key not in RANGES:
        raise RangeError(f"Unknown range {key!r}: pick one of {', '.join(RANGES)}.")
    if key == "today":
        return Range(key, today, today)
    if key == "7d":
        return Range(key, today - timedelta(days=6), today)
    if key == "30d":
        return Range(key, today - timedelta(days=29), today)
    if key == "12m":
        months_back = today.year * 12 + today.month - 1 - 11  # this month and the eleven before it
        return Range(key, date(months_back // 12, months_back % 12 + 1, 1), today)
    try:
        start, end = date.fromisoformat(args.get("start", "")), date.fromisoformat(args.get("end", ""))
    except ValueError:
        raise RangeError("Give a custom range as two dates, YYYY-MM-DD.") from None
    if start > end:
        raise RangeError("The custom range starts after it ends: swap the dates.")
    if (end - start).days >= MAX_CUSTOM_DAYS:
        raise RangeError(f"A custom range covers at most {MAX_CUSTOM_DAYS} days.")
    return Range(key, start, end)


@dataclass
class Chart:
    key: str
    title: str
    columns: list  # [(name, label)]
    rows: list = field(default_factory=list)
    kind: str = "line"  # line | bar | table (no canvas)
    series: tuple = ()  # column names drawn; the first column labels the x axis
    note: str = ""

    def data(self):
        """What dashboard.js draws: x labels and one dataset per series column."""
        names = [name for name, _label in self.columns]
        labels = dict(self.columns)
        return {"kind": self.kind, "labels": [str(row[0]) for row in self.rows],
                "datasets": [{"label": labels[s], "data": [row[names.index(s)] for row in self.rows]}
                             for s in self.series]}


def _periods(rng):
    """The x axis: every day of the range, or every month (first day) for ranges over three months."""
    if rng.monthly:
        months, d = [], rng.start.replace(day=1)
        while d <= rng.end:
            months.append(d)
            d = (d + timedelta(days=32)).replace(day=1)
        return months
    return [rng.start + timedelta(days=i) for i in range(rng.days)]


def _period_of(rng, day):
    return day.replace(day=1) if rng.monthly else day


def _label(rng, period):
    return period.strftime("%Y-%m") if rng.monthly else period.isoformat()


def _in(rng, column):
    return sa.and_(column >= rng.start, column <= rng.end)


def _money(minor):
    return round(minor / 100, 2)


def _rate(part, whole):
    return round(100 * part / whole, 1) if whole else 0.0


# --- business half ---


def _revenue(rng):
    rows = db.session.execute(
        sa.select(PaymentDaily.day, PaymentDaily.gateway, PaymentDaily.plan_name, PaymentDaily.currency,
                  PaymentDaily.payments, PaymentDaily.gross, PaymentDaily.refunded_payments, PaymentDaily.refunds,
                  PaymentDaily.credits_sold, PaymentDaily.first_purchases)
        .where(_in(rng, PaymentDaily.day))).all()
    currencies = sorted({r.currency for r in rows}) or ["USD"]
    # Money of different currencies is never added up: each currency has its own rows.
    per_period = defaultdict(lambda: [0, 0])
    by_source = defaultdict(lambda: [0, 0, 0, 0])
    credits_sold, firsts = defaultdict(int), defaultdict(int)
    for r in rows:
        period = _period_of(rng, r.day)
        per_period[(period, r.currency)][0] += r.gross
        per_period[(period, r.currency)][1] += r.refunds
        source = by_source[(r.gateway, r.plan_name or "(no plan)", r.currency)]
        source[0] += r.payments
        source[1] += r.gross
        source[2] += r.refunds
        source[3] += r.refunded_payments
        credits_sold[period] += r.credits_sold
        firsts[period] += r.first_purchases
    title = "Revenue per month" if rng.monthly else "Revenue per day"
    revenue = []
    for currency in currencies:
        chart = Chart(f"revenue_{currency.lower()}", f"{title} ({currency})",
                      [("period", "Month" if rng.monthly else "Day"), ("gross", f"Gross ({currency})"),
                       ("refunds", f"Refunds ({currency})"), ("net", f"Net ({currency})")],
                      kind="bar", series=("net", "refunds"))
        for period in _periods(rng):
            gross, refunds = per_period.get((period, currency), (0, 0))
            chart.rows.append([_label(rng, period), _money(gross), _money(refunds), _money(gross - refunds)])
        revenue.append(chart)
    sources = Chart("revenue_sources", "Revenue by gateway and plan",
                    [("gateway", "Gateway"), ("plan", "Plan"), ("currency", "Currency"), ("payments", "Payments"),
                     ("gross", "Gross"), ("refunded", "Refunded payments"), ("refunds", "Refunds"), ("net", "Net")],
                    kind="table")
    for (gateway, plan, currency), (n, gross, refunds, n_refunded) in sorted(by_source.items()):
        sources.rows.append([gateway, plan, currency, n, _money(gross), n_refunded, _money(refunds),
                             _money(gross - refunds)])
    totals = {c: sum(v[0] - v[1] for (p, cur), v in per_period.items() if cur == c) for c in currencies}
    return revenue, sources, credits_sold, firsts, totals


def _customers(rng, firsts, net_by_currency):
    start, end = rng.timestamps()
    payers = db.session.scalar(sa.select(sa.func.count(sa.distinct(Payment.user_id))).where(
        Payment.created_at >= start, Payment.created_at < end, Payment.status.in_(analytics.TAKEN))) or 0
    day = analytics._utc_day(User.created_at)
    signups = defaultdict(int)
    for d, n in db.session.execute(sa.select(day, sa.func.count()).where(
            User.role == "customer", User.created_at >= start, User.created_at < end).group_by(day)):
        signups[_period_of(rng, analytics._as_date(d))] += n
    chart = Chart("signups", "Sign-ups and first purchases",
                  [("period", "Month" if rng.monthly else "Day"), ("signups", "Sign-ups"),
                   ("first_purchases", "First purchases")], kind="bar", series=("signups", "first_purchases"))
    for period in _periods(rng):
        chart.rows.append([_label(rng, period), signups[period], firsts[period]])
    total_signups, total_firsts = sum(signups.values()), sum(firsts.values())
    figures = {"paying_customers": payers, "signups": total_signups, "first_purchases": total_firsts,
               "conversion": _rate(total_firsts, total_signups),
               "arpu": {c: _money(net / payers) if payers else 0 for c, net in net_by_currency.items()}}
    return chart, figures


def _subscriptions(rng):
    """MRR now, by plan, and the range's new and cancelled subscriptions (from payments and users)."""
    start, end = rng.timestamps()
    active = ("active", "trialing", "past_due")
    mrr, by_plan = defaultdict(int), defaultdict(lambda: [0, 0])
    for plan, n in db.session.execute(
            sa.select(Plan, sa.func.count(User.id)).join(User, User.plan_id == Plan.id)
            .where(User.subscription_status.in_(active), Plan.kind.in_(("monthly", "yearly"))).group_by(Plan.id)):
        monthly = plan.price * n if plan.kind == "monthly" else plan.price * n / 12
        mrr[plan.currency] += monthly
        by_plan[(plan.name, plan.currency)][0] += n
        by_plan[(plan.name, plan.currency)][1] += monthly
    earlier = sa.orm.aliased(Payment)
    subscription_plan = sa.select(Plan.id).where(Plan.kind.in_(("monthly", "yearly")))
    new = db.session.scalar(sa.select(sa.func.count(sa.distinct(Payment.user_id))).where(
        Payment.created_at >= start, Payment.created_at < end, Payment.status.in_(analytics.TAKEN),
        Payment.plan_id.in_(subscription_plan),
        ~sa.exists().where(earlier.user_id == Payment.user_id, earlier.plan_id.in_(subscription_plan),
                           earlier.status.in_(analytics.TAKEN), earlier.created_at < start))) or 0
    cancelled = db.session.scalar(sa.select(sa.func.count()).where(
        User.subscription_status.in_(("canceled", "cancelled")), User.subscription_period_end >= start,
        User.subscription_period_end < end)) or 0
    subscribers = sum(n for n, _m in by_plan.values())
    chart = Chart("subscriptions", "Subscriptions by plan (now)",
                  [("plan", "Plan"), ("currency", "Currency"), ("subscribers", "Subscribers"), ("mrr", "MRR")],
                  kind="table")
    for (name, currency), (n, monthly) in sorted(by_plan.items()):
        chart.rows.append([name, currency, n, _money(monthly)])
    figures = {"mrr": {c: _money(v) for c, v in mrr.items()}, "new": new, "cancelled": cancelled,
               "churn": _rate(cancelled, subscribers + cancelled)}
    return chart, figures


class JobFigures:
    """The range's job rollups added up in SQL, a few hundred rows at most whatever the history holds."""

    def __init__(self, rng):
        net = sa.func.sum(JobDaily.credits - JobDaily.refunded_credits)
        self.by_day = db.session.execute(
            sa.select(JobDaily.day, JobDaily.status, sa.func.sum(JobDaily.jobs), net)
            .where(_in(rng, JobDaily.day)).group_by(JobDaily.day, JobDaily.status)).all()
        self.by_function = db.session.execute(
            sa.select(JobDaily.function_key, sa.func.sum(JobDaily.jobs), net, sa.func.sum(JobDaily.refunded_jobs),
                      sa.func.sum(JobDaily.refunded_credits))
            .where(_in(rng, JobDaily.day)).group_by(JobDaily.function_key)).all()
        self.by_provider = db.session.execute(
            sa.select(JobDaily.provider_key, JobDaily.status, sa.func.sum(JobDaily.jobs), *analytics.hist_sums())
            .where(_in(rng, JobDaily.day), JobDaily.provider_key != "")
            .group_by(JobDaily.provider_key, JobDaily.status)).all()
        self.trend = db.session.execute(
            sa.select(JobDaily.day, JobDaily.provider_key, *analytics.hist_sums())
            .where(_in(rng, JobDaily.day), JobDaily.provider_key != "", JobDaily.status == "done")
            .group_by(JobDaily.day, JobDaily.provider_key)).all()
        self.by_app = db.session.execute(
            sa.select(JobDaily.app_id, JobDaily.status, sa.func.sum(JobDaily.jobs), net)
            .where(_in(rng, JobDaily.day), JobDaily.app_id != 0).group_by(JobDaily.app_id, JobDaily.status)).all()


def _usage(rng, figures, credits_sold):
    spent = defaultdict(int)
    for day, _status, _n, net in figures.by_day:
        spent[_period_of(rng, day)] += int(net or 0)
    credits = Chart("credits", "Credits sold and spent",
                    [("period", "Month" if rng.monthly else "Day"), ("sold", "Credits sold"),
                     ("spent", "Credits spent")], kind="line", series=("sold", "spent"))
    for period in _periods(rng):
        credits.rows.append([_label(rng, period), credits_sold[period], spent[period]])
    total_jobs = sum(int(r[1]) for r in figures.by_function)
    usage = Chart("functions", "Usage per function",
                  [("function", "Function"), ("jobs", "Jobs"), ("credits", "Credits"), ("share", "Share of jobs (%)")],
                  kind="bar", series=("jobs",))
    for key, n, net, _refunded, _refunded_credits in sorted(figures.by_function, key=lambda r: (-r[1], r[0])):
        usage.rows.append([key, int(n), int(net or 0), _rate(int(n), total_jobs)])
    providers = defaultdict(lambda: {"jobs": 0, "done": 0, "failed": 0, "hist": None})
    for key, status, n, *hist in figures.by_provider:
        p = providers[key]
        p["jobs"] += int(n)
        if status in ("done", "failed"):
            p[status] += int(n)
        if status == "done":
            p["hist"] = [int(h or 0) for h in hist]
    costs = {p.key: p.config.get("cost_per_job") for p in db.session.scalars(sa.select(Provider))
             if isinstance(p.config, dict) and isinstance(p.config.get("cost_per_job"), (int, float))}
    per_provider = Chart("providers", "Per provider",
                         [("provider", "Provider"), ("jobs", "Jobs"), ("error_rate", "Error rate (%)"),
                          ("p50_ms", "p50 time (ms, at most)"), ("p95_ms", "p95 time (ms, at most)"),
                          ("cost", "Cost")], kind="table",
                         note="Times are read from a histogram: each figure is the upper bound of its bucket. "
                              "Cost is shown where the provider's config states cost_per_job (jobs it finished "
                              "or failed × that cost).")
    for key, p in sorted(providers.items()):
        hist = p["hist"] or []
        cost = costs.get(key)
        per_provider.rows.append([key, p["jobs"], _rate(p["failed"], p["done"] + p["failed"]),
                                  analytics.percentile(hist, 0.5), analytics.percentile(hist, 0.95),
                                  round(cost * (p["done"] + p["failed"]), 2) if cost is not None else None])
    return credits, usage, per_provider


def _apps(figures):
    """Usage per client app (REST API): every app, busiest first; apps deleted since keep their figures."""
    names = dict(db.session.execute(sa.select(ClientApp.id, ClientApp.name)).all())
    usage = {app_id: {"jobs": 0, "done": 0, "failed": 0, "credits": 0} for app_id in names}
    for app_id, status, n, net in figures.by_app:
        u = usage.setdefault(app_id, {"jobs": 0, "done": 0, "failed": 0, "credits": 0})
        u["jobs"] += int(n)
        u["credits"] += int(net or 0)
        if status in ("done", "failed"):
            u[status] += int(n)
    chart = Chart("apps", "Usage per client app",
                  [("app", "Client app"), ("jobs", "Jobs"), ("succeeded", "Succeeded"), ("errors", "Failed"),
                   ("error_rate", "Error rate (%)"), ("credits", "Credits spent")], kind="table",
                  note="Jobs submitted through the REST API (Admin → Client apps).")
    for app_id, u in sorted(usage.items(), key=lambda item: (-item[1]["jobs"], names.get(item[0], ""))):
        chart.rows.append([names.get(app_id, f"App #{app_id} (deleted)"), u["jobs"], u["done"], u["failed"],
                           _rate(u["failed"], u["done"] + u["failed"]), u["credits"]])
    return chart


def _page_views(rng):
    per_period, per_path = defaultdict(int), defaultdict(int)
    for day, path, views in db.session.execute(
            sa.select(PageViewDaily.day, PageViewDaily.path, PageViewDaily.views).where(_in(rng, PageViewDaily.day))):
        per_period[_period_of(rng, day)] += views
        per_path[path] += views
    chart = Chart("page_views", "Page views", [("period", "Month" if rng.monthly else "Day"), ("views", "Views")],
                  kind="line", series=("views",),
                  note="Views of the home page, function pages, pricing and content pages; bots are not counted.")
    for period in _periods(rng):
        chart.rows.append([_label(rng, period), per_period[period]])
    top = Chart("top_pages", "Top pages", [("path", "Page"), ("views", "Views")], kind="bar", series=("views",))
    top.rows = [[path, n] for path, n in sorted(per_path.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    return chart, top


# --- operational half ---


def _failures(rng, figures):
    per_period = defaultdict(lambda: [0, 0])
    for day, status, n, _net in figures.by_day:
        if status in ("done", "failed"):
            per_period[_period_of(rng, day)][0] += int(n)
            per_period[_period_of(rng, day)][1] += int(n) if status == "failed" else 0
    chart = Chart("failures", "Failure rate", [("period", "Month" if rng.monthly else "Day"),
                                               ("finished", "Jobs finished"), ("failed", "Failed"),
                                               ("rate", "Failure rate (%)")], kind="line", series=("rate",))
    for period in _periods(rng):
        finished, failed = per_period[period]
        chart.rows.append([_label(rng, period), finished, failed, _rate(failed, finished)])
    errors = Chart("top_errors", "Top error messages per provider",
                   [("provider", "Provider"), ("error", "Error"), ("jobs", "Jobs")], kind="table")
    total = sa.func.sum(JobErrorDaily.jobs).label("n")
    ranked = db.session.execute(
        sa.select(JobErrorDaily.provider_key, JobErrorDaily.error, total).where(_in(rng, JobErrorDaily.day))
        .group_by(JobErrorDaily.provider_key, JobErrorDaily.error).order_by(JobErrorDaily.provider_key, total.desc()))
    shown = defaultdict(int)
    for provider, error, n in ranked:
        if shown[provider] < 5:
            shown[provider] += 1
            errors.rows.append([provider or "(none)", error, int(n)])
    refunds = Chart("refunds", "Refunded jobs", [("function", "Function"), ("jobs", "Jobs refunded"),
                                                 ("credits", "Credits refunded")], kind="table")
    refunds.rows = [[key, int(n), int(c or 0)] for key, _jobs, _net, n, c in sorted(figures.by_function) if n]
    return chart, errors, refunds


def queue_status():
    """Jobs waiting and in flight per queue, the oldest waiting job's age and workers alive, from RQ; without
    Redis (make run: an in-process pool) the same figures from the jobs' own states."""
    now = datetime.now(timezone.utc)
    if current_app.config["REDIS_URL"]:
        from rq import Worker

        from app.services import queue

        rows = []
        for q in queue.queues():
            oldest = None
            first = q.get_job_ids(0, 1)
            if first:
                job = q.fetch_job(first[0])
                if job is not None and job.enqueued_at is not None:
                    oldest = job.enqueued_at.replace(tzinfo=job.enqueued_at.tzinfo or timezone.utc)
            rows.append({"name": q.name, "waiting": q.count, "in_flight": q.started_job_registry.count,
                         "oldest_wait_s": int((now - oldest).total_seconds()) if oldest else None})
        workers = len(Worker.all(connection=queue.redis_connection()))
        return {"mode": "rq", "queues": rows, "workers": workers}
    waiting = db.session.scalar(sa.select(sa.func.count()).where(Job.status == "queued")) or 0
    in_flight = db.session.scalar(sa.select(sa.func.count()).where(Job.status.in_(jobs.ACTIVE[1:]))) or 0
    oldest = db.session.scalar(sa.select(sa.func.min(Job.created_at)).where(Job.status == "queued"))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    return {"mode": "in-process", "workers": None, "queues": [
        {"name": "in-process", "waiting": waiting, "in_flight": in_flight,
         "oldest_wait_s": int((now - oldest).total_seconds()) if oldest else None}]}


def provider_health(rng, figures):
    """Each provider's last Test provider / health check, its last job and its daily p50 trend."""
    trend = defaultdict(lambda: defaultdict(list))
    for day, key, *hist in figures.trend:
        trend[key][_period_of(rng, day)].append([int(h or 0) for h in hist])
    health = []
    for provider in db.session.scalars(sa.select(Provider).order_by(Provider.name)):
        last_job = db.session.execute(
            sa.select(Job.id, Job.status, Job.finished_at).where(Job.provider_key == provider.key,
                                                                 Job.status.in_(("done", "failed")))
            .order_by(Job.created_at.desc()).limit(1)).first()
        points = [analytics.percentile(analytics.merge_hist(trend[provider.key][p]), 0.5) for p in _periods(rng)]
        health.append({"provider": provider, "last_job": last_job,
                       "trend": [p for p in points if p is not None]})
    chart = Chart("latency", "Provider p50 time (ms, at most)",
                  [("period", "Month" if rng.monthly else "Day")]
                  + [(key, key) for key in sorted(trend)], kind="line", series=tuple(sorted(trend)))
    for period in _periods(rng):
        chart.rows.append([_label(rng, period)] + [
            analytics.percentile(analytics.merge_hist(trend[key][period]), 0.5) for key in sorted(trend)])
    return health, chart


def recent_jobs(limit=10):
    return db.session.scalars(sa.select(Job).order_by(Job.id.desc()).limit(limit)).unique().all()


def recent_failures(limit=10):
    return db.session.scalars(sa.select(Job).where(Job.status == "failed").order_by(Job.id.desc())
                              .limit(limit)).unique().all()


def alerts(limit=20):
    """Open incidents first, then the latest resolved ones."""
    return db.session.scalars(sa.select(Alert).order_by(Alert.resolved_at.is_not(None), Alert.opened_at.desc())
                              .limit(limit)).all()


def build(rng, role):
    """Everything the dashboard shows this role for the range: {"charts": {key: Chart}, ...}."""
    business, operations = role in BUSINESS_ROLES, role in OPERATIONS_ROLES
    figures = JobFigures(rng)
    out = {"range": rng, "charts": {}, "business": business, "operations": operations}
    if business:
        revenue, sources, credits_sold, firsts, net = _revenue(rng)
        signups, customers = _customers(rng, firsts, net)
        subscriptions, subs = _subscriptions(rng)
        credits, usage, per_provider = _usage(rng, figures, credits_sold)
        views, top_pages = _page_views(rng)
        health, latency = provider_health(rng, figures)
        for chart in (*revenue, sources, credits, signups, subscriptions, usage, per_provider, views, top_pages,
                      latency, _apps(figures)):
            out["charts"][chart.key] = chart
        out.update(revenue_keys=[c.key for c in revenue], net=net, customers=customers, subscriptions=subs,
                   health=health, alerts=alerts(), top_referrers=referrals.top_referrers())
    if operations:
        failures, errors, refunds = _failures(rng, figures)
        for chart in (failures, errors, refunds):
            out["charts"][chart.key] = chart
        out.update(queue=queue_status(), recent_jobs=recent_jobs(), recent_failures=recent_failures())
    return out
