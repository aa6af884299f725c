"""Helpers for job tests: catalog rows bound to contract servers, and running queued jobs for real."""
import time
from datetime import datetime, timezone

import sqlalchemy as sa
from rq import SimpleWorker

from app.extensions import db
from app.models import AIFunction, CreditLedger, Job, Provider, User
from app.services import queue
from app.services.crypto import encrypt_json


def add_provider(key, name=None, config=None, secrets=None, enabled=True):
    provider = Provider(key=key, name=name or key.capitalize(), enabled=enabled, config=config or {},
                        secrets=encrypt_json(secrets) if secrets else None)
    db.session.add(provider)
    db.session.commit()
    return provider


def add_function(provider, key="enhance", **fields):
    values = dict(name=key.capitalize(), description="", enabled=True, price_per_use=3, priority=10,
                  provider_config={}, allowed_formats=["JPEG", "PNG", "WEBP"])
    values.update(fields)
    fn = AIFunction(key=key, provider_id=provider.id, **values)
    db.session.add(fn)
    db.session.commit()
    return fn


def local_function(key="enhance", operation="enhance", **fields):
    provider = add_provider("local", name=f"Local {key}", config={"timeout": 30, "retries": 0})
    return add_function(provider, key=key, provider_config={"operation": operation}, **fields)


def replicate_provider(server, **config):
    return add_provider("replicate", name="Replicate",
                        config={"endpoint": f"{server.url}/v1", "model": "acme/restore", "poll_interval": 0.05,
                                "timeout": 5, "retries": 2, "allow_hosts": ["127.0.0.1"], **config},
                        secrets={"api_token": server.expected_token})


def runpod_provider(server, **config):
    return add_provider("runpod", name="RunPod",
                        config={"endpoint": f"{server.url}/v2/ep-test", "poll_interval": 0.05, "timeout": 5,
                                "retries": 2, "allow_hosts": ["127.0.0.1"], **config},
                        secrets={"api_key": server.expected_token})


def drain(app, timeout=60):
    """Run every RQ task with a real RQ worker and its scheduler, in this process, until the queues are empty
    and no delayed task (a status check, a retry) is left: each burst moves the tasks that are due."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        queues = queue.queues(app)
        while True:
            SimpleWorker(queues, connection=queue.redis_connection(app)).work(burst=True, with_scheduler=True)
            due = [q.scheduled_job_registry.get_scheduled_time(job_id) for q in queues
                   for job_id in q.scheduled_job_registry.get_job_ids(cleanup=False)]
            if not due and not any(q.count for q in queues):
                return
            assert time.monotonic() < deadline, "drain: tasks still scheduled at the deadline"
            time.sleep(max(0.0, min(0.5, (min(due) - datetime.now(timezone.utc)).total_seconds())) if due else 0)


def balance(user_id):
    return db.session.scalar(sa.select(User.balance).where(User.id == user_id))


def ledger_sum(user_id):
    return db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(CreditLedger.amount), 0))
                             .where(CreditLedger.user_id == user_id))


def refunds(job_id):
    return db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)
                             .where(CreditLedger.job_id == job_id, CreditLedger.kind == "refund"))


def job(job_id):
    db.session.expire_all()
    return db.session.get(Job, job_id)


def jobs_count():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Job))


def funded_customer(credits_amount, **fields):
    """A customer whose balance came from a ledger grant, so balance == sum(ledger) from the start."""
    from app.services import credits
    from tests.helpers import make_user

    user = make_user("customer", **fields)
    credits.grant(user.id, credits_amount, kind="grant", reason="test funds")
    db.session.commit()
    return user
