"""Client apps: their API keys (hashed, shown once), their users (rows of `users` by external id), credits
granted server to server, idempotency keys, the REST status names, and usage per app.

Entry points called by the admin and the API commit their own transaction and write the audit row; the
credits service joins it, so an app user's balance and ledger are the same as a customer's.
"""
import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import AIFunction, ApiIdempotency, ApiKey, ClientApp, CreditLedger, Job, JobDaily, User
from app.services import audit, catalog, credits, parameters
from app.services.crypto import decrypt_json, encrypt_json

KEY_PREFIX = "npx_live_"
PREFIX_LENGTH = len(KEY_PREFIX) + 6  # what lists and logs show of a key
# last_used_at is written at most this often per key: a hot key must not cost a write per request.
LAST_USED_EVERY = timedelta(minutes=1)

# Our job states → the API's status names (seed 001). The one place they are mapped.
API_STATUS = {"queued": "queued", "processing": "running", "submitting": "running", "waiting": "running",
              "fetching": "running", "done": "succeeded", "failed": "failed", "cancelled": "cancelled"}
API_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
WEBHOOK_EVENTS = {"succeeded": "job.completed", "failed": "job.failed", "cancelled": "job.cancelled"}


def api_status(status):
    return API_STATUS[status]


def statuses_for(name):
    """Our job states that show as the API status `name`."""
    return [ours for ours, theirs in API_STATUS.items() if theirs == name]


class IdempotencyConflict(Exception):
    """The key was used before with another request."""


def _now():
    return datetime.now(timezone.utc)


def _insert(model):
    """INSERT … ON CONFLICT DO NOTHING for PostgreSQL and SQLite (`make run`) alike."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def _hash(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


# --- keys ---


def create_key(app_id, name="", actor=None):
    """A new key for the app: returns (row, the key in clear), shown once; only its hash is stored."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(app_id=app_id, name=(name or "").strip()[:120], prefix=raw[:PREFIX_LENGTH], key_hash=_hash(raw))
    db.session.add(row)
    db.session.flush()
    audit.record("create_key", "ClientApp", app_id, new={"key": row.prefix + "…", "name": row.name}, actor=actor)
    db.session.commit()
    return row, raw


def revoke_key(key_id, actor=None):
    """Revoke a key at once; False when it was already revoked."""
    row = db.session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        db.session.rollback()
        return False
    row.revoked_at = _now()
    audit.record("revoke_key", "ClientApp", row.app_id, old={"key": row.prefix + "…"}, actor=actor)
    db.session.commit()
    return True


def authenticate(raw):
    """The (app, key) a presented key belongs to, or None: unknown, revoked, or its app disabled."""
    if not raw or not raw.startswith(KEY_PREFIX):
        return None
    found = db.session.execute(
        sa.select(ApiKey, ClientApp).join(ClientApp, ClientApp.id == ApiKey.app_id)
        .where(ApiKey.key_hash == _hash(raw), ApiKey.revoked_at.is_(None), ClientApp.enabled.is_(True))
    ).first()
    if found is None:
        db.session.rollback()
        return None
    key, app = found
    now = _now()
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_EVERY:
        db.session.execute(sa.update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        db.session.commit()
    # Otherwise the read-only transaction goes on into the request: a commit here would expire both rows.
    return app, key


# --- webhook secret ---


def rotate_webhook_secret(app_id, actor=None):
    """A new signing secret for the app's webhooks, returned in clear once; stored encrypted."""
    raw = "whsec_" + secrets.token_urlsafe(32)
    app = db.session.get(ClientApp, app_id)
    app.webhook_secret = encrypt_json(raw)
    audit.record("rotate_webhook_secret", "ClientApp", app_id, actor=actor)
    db.session.commit()
    return raw


def webhook_secret(app):
    return decrypt_json(app.webhook_secret) if app.webhook_secret else None


# --- functions ---


def functions_for(app):
    """The functions on the site this app may use (all of them when its list is empty)."""
    allowed = set(app.allowed_functions or ())
    return [fn for fn in catalog.visible_functions() if not allowed or fn.key in allowed]


def function_for(app, key):
    allowed = app.allowed_functions or ()
    if allowed and key not in allowed:
        return None
    return catalog.visible_function(key)


# --- app users ---


def app_user(app, external_id):
    """The app's user with this external id, made on first use with the app's starting credits."""
    found = find_user(app, external_id)
    if found is not None:
        return found
    created = db.session.execute(
        _insert(User).values(app_id=app.id, external_id=external_id, role="customer", password_hash="",
                             balance=0, email_job_failed=False, created_at=_now())
        .on_conflict_do_nothing(index_elements=["app_id", "external_id"]).returning(User.id)
    ).scalar()
    if created is not None and app.starting_credits:
        credits.grant(created, app.starting_credits, kind="grant", reason=f"Starting credits from {app.name}",
                      idempotency_key=f"app:{app.id}:welcome:{created}")
    db.session.commit()
    return db.session.scalars(sa.select(User).where(User.app_id == app.id, User.external_id == external_id)).one()


def find_user(app, external_id):
    return db.session.scalars(sa.select(User).where(User.app_id == app.id, User.external_id == external_id)).first()


def user_summary(user):
    counts = db.session.execute(
        sa.select(sa.func.count(Job.id), sa.func.count(Job.id).filter(Job.status == "done"))
        .where(Job.user_id == user.id)
    ).one()
    return {"external_id": user.external_id, "token_balance": user.balance, "total_jobs": counts[0],
            "successful_jobs": counts[1], "created_at": user.created_at}


# --- idempotency ---


def request_hash(endpoint, body):
    return hashlib.sha256(json.dumps([endpoint, body], sort_keys=True, default=str).encode()).hexdigest()


def claim(app_id, key, digest):
    """Insert the key's row in the current transaction. Returns None when this request owns the key (the
    caller does the work and calls `remember` before committing), else the stored (status, body) to replay.

    A concurrent identical request blocks on the unique constraint until the first commits, then replays it;
    if the first rolled back, the second owns the key."""
    claimed = db.session.execute(
        _insert(ApiIdempotency).values(app_id=app_id, key=key, request_hash=digest, created_at=_now())
        .on_conflict_do_nothing(index_elements=["app_id", "key"]).returning(ApiIdempotency.id)
    ).scalar()
    if claimed is not None:
        return None
    row = db.session.execute(sa.select(ApiIdempotency.request_hash, ApiIdempotency.status_code,
                                       ApiIdempotency.response)
                             .where(ApiIdempotency.app_id == app_id, ApiIdempotency.key == key)).one()
    db.session.rollback()
    if row.request_hash != digest:
        raise IdempotencyConflict("This idempotency_key was used with a different request.")
    return row.status_code, row.response


def remember(app_id, key, status, body):
    db.session.execute(sa.update(ApiIdempotency)
                       .where(ApiIdempotency.app_id == app_id, ApiIdempotency.key == key)
                       .values(status_code=status, response=body))


# --- jobs ---


class TooManyInFlight(Exception):
    """The app has as many unfinished jobs as its limit allows."""


class NotEnoughCredits(Exception):
    def __init__(self, balance, required):
        super().__init__("Insufficient tokens")
        self.balance, self.required = balance, required


def accepted(job, balance):
    return {"job_id": job.id, "status": API_STATUS[job.status], "function": job.function_key,
            "tokens_charged": job.credits_charged, "user_balance": balance}


def submit_job(app, user, fn, body, image, key=None):
    """Submit an API job through services.jobs.submit → (status, body). `body` is the validated request
    (dict, for the idempotency hash) and `image()` returns the input bytes: it is called only when this
    request owns its idempotency key, so a replay never fetches or decodes anything.

    NotEnoughCredits, TooManyInFlight, IdempotencyConflict, uploads.SubmitError or fetch errors otherwise;
    nothing is charged or queued then."""
    # Short of credits before any image is fetched; the job's own submit checks again inside its transaction.
    try:
        price = parameters.price(fn.price_per_use, fn.parameters,
                                 {**parameters.defaults(fn.parameters), **(body.get("params") or {})})
    except (TypeError, ValueError):  # values the submit's own check will refuse with their field names
        price = None
    if price is not None and user.balance < price:
        raise NotEnoughCredits(user.balance, price)
    if key:
        replay = claim(app.id, key, request_hash("generate", [user.external_id, body]))
        if replay is not None:
            return replay
    from app.services import jobs

    def before_commit(job, balance):
        # The app row serialises its submits, so the in-flight count cannot be overrun by parallel requests.
        # FOR NO KEY UPDATE: the job row just inserted holds a key-share lock on it (its foreign key), which a
        # plain FOR UPDATE would wait on across transactions (a deadlock).
        db.session.execute(sa.select(ClientApp.id).where(ClientApp.id == app.id).with_for_update(key_share=True))
        in_flight = db.session.scalar(sa.select(sa.func.count(Job.id))
                                      .where(Job.app_id == app.id, Job.status.in_(jobs.ACTIVE)))
        if in_flight > app.max_jobs_in_flight:
            raise TooManyInFlight(f"{app.max_jobs_in_flight} jobs are already in flight")
        answer["body"] = accepted(job, balance)
        if key:
            remember(app.id, key, 202, answer["body"])

    answer = {}
    try:
        data = image()
        jobs.submit(user, fn.key, data, fn=fn, params=body.get("params") or {}, priority_boost=10 - body["priority"],
                    before_commit=before_commit, fields={"app_id": app.id, "webhook_url": body.get("webhook_url")})
    except BaseException:
        db.session.rollback()
        raise
    return 202, answer["body"]


# --- credits granted by an app ---


def _grant_one(app, user, amount, reason, ledger_key):
    previous = db.session.scalar(sa.select(User.balance).where(User.id == user.id))
    balance = credits.grant(user.id, amount, kind="grant", reason=f"{app.name}: {reason}"[:500],
                            idempotency_key=ledger_key)
    entry = db.session.scalar(sa.select(CreditLedger.id).where(CreditLedger.user_id == user.id)
                              .order_by(CreditLedger.id.desc()).limit(1))
    return {"external_id": user.external_id, "previous_balance": previous, "amount_added": amount,
            "new_balance": balance, "transaction_id": f"txn_{entry}"}


def grant(app, external_id, amount, reason, key=None):
    """Credits an app gives its user → (status, body); with a key, a retry replays the first answer."""
    user = app_user(app, external_id)  # committed on its own: making a user moves no credits
    if key:
        replay = claim(app.id, key, request_hash("grant", [external_id, amount, reason]))
        if replay is not None:
            return replay
    body = _grant_one(app, user, amount, reason, f"app:{app.id}:grant:{key}" if key else None)
    if key:
        remember(app.id, key, 200, body)
    audit.record("grant", "User", user.id, new={"app_id": app.id, "amount": amount, "reason": reason[:200]})
    db.session.commit()
    return 200, body


def grant_batch(app, grants, key=None):
    """Several grants, all or none, in one transaction → (status, body). `grants`: [{external_id, amount,
    reason}]; an external id may appear once."""
    users = [app_user(app, g["external_id"]) for g in grants]
    if key:
        replay = claim(app.id, key, request_hash("batch", grants))
        if replay is not None:
            return replay
    try:
        results = [_grant_one(app, user, g["amount"], g.get("reason") or "Grant",
                              f"app:{app.id}:batch:{key}:{i}" if key else None)
                   for i, (user, g) in enumerate(zip(users, grants))]
        body = {"grants": results, "count": len(results), "total_amount": sum(g["amount"] for g in grants)}
        if key:
            remember(app.id, key, 200, body)
        audit.record("grant_batch", "ClientApp", app.id, new={"count": len(results), "total": body["total_amount"]})
        db.session.commit()
    except sa.exc.DataError:
        db.session.rollback()
        raise ValueError("A grant would take a balance past the largest number of credits; nothing was granted.")
    except BaseException:
        db.session.rollback()
        raise
    return 200, body


# --- usage ---


def app_usage(app_id, days=30):
    """One app's usage, from the daily rollups: the last `days` UTC days and all time (its admin page)."""
    net = sa.func.sum(JobDaily.credits - JobDaily.refunded_credits)

    def figures(*where):
        rows = db.session.execute(sa.select(JobDaily.status, sa.func.sum(JobDaily.jobs), net)
                                  .where(JobDaily.app_id == app_id, *where).group_by(JobDaily.status)).all()
        return {"jobs": sum(int(n) for _s, n, _c in rows),
                "succeeded": sum(int(n) for s, n, _c in rows if s == "done"),
                "errors": sum(int(n) for s, n, _c in rows if s == "failed"),
                "credits": sum(int(c or 0) for _s, _n, c in rows)}

    since = _now().date() - timedelta(days=days - 1)
    users = db.session.scalar(sa.select(sa.func.count(User.id)).where(User.app_id == app_id))
    return {"recent": figures(JobDaily.day >= since), "total": figures(), "users": users, "days": days}


def function_keys():
    return db.session.scalars(sa.select(AIFunction.key).order_by(AIFunction.key)).all()
