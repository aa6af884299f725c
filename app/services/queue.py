"""Where jobs wait: RQ on Redis when REDIS_URL is set, else an in-process thread pool.

Both run the same tasks.process_job, so development with nothing but Python behaves like production.
"""
from concurrent.futures import ThreadPoolExecutor

import redis
from flask import current_app
from rq import Queue

# Workers listen in this order, so a higher-priority function's jobs are taken first.
QUEUE_NAMES = ("neurapix-high", "neurapix-default", "neurapix-low")
HIGH_PRIORITY, LOW_PRIORITY = 50, 0


def queue_name(priority):
    if priority >= HIGH_PRIORITY:
        return QUEUE_NAMES[0]
    return QUEUE_NAMES[1] if priority >= LOW_PRIORITY else QUEUE_NAMES[2]


def redis_connection(app=None):
    app = app or current_app
    conn = app.extensions.get("neurapix_redis")
    if conn is None:
        conn = app.extensions["neurapix_redis"] = redis.Redis.from_url(app.config["REDIS_URL"])
    return conn


def queues(app=None):
    conn = redis_connection(app)
    return [Queue(name, connection=conn) for name in QUEUE_NAMES]


def _in_process(app, job_id):
    from app.tasks import process_job

    with app.app_context():
        process_job(job_id)


def enqueue(job_id, priority, timeout_seconds):
    """Hand a job id to the workers; raises if the queue cannot take it."""
    app = current_app._get_current_object()
    if app.config["REDIS_URL"]:
        Queue(queue_name(priority), connection=redis_connection(app)).enqueue(
            "app.tasks.process_job", job_id, job_timeout=int(timeout_seconds), result_ttl=0, failure_ttl=86400,
        )
        return
    pool = app.extensions.get("neurapix_pool")
    if pool is None:
        pool = app.extensions["neurapix_pool"] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobs")
    pool.submit(_in_process, app, job_id)
