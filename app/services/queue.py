"""Where job tasks wait: RQ on Redis when REDIS_URL is set (delays through RQ's scheduler), else an
in-process thread pool (delays through timers). Both run the same app.tasks entry points.
"""
import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import redis
from flask import current_app
from rq import Queue

# Status checks of jobs already at a provider come first, so jobs in flight finish before new ones start;
# then new jobs by priority. Work done on our own CPU has its own queue, so a burst of it never delays the
# dispatch of remote jobs (run it in its own worker processes: see README, "Jobs and providers").
CHECKS_QUEUE = "neurapix-checks"
PRIORITY_QUEUES = ("neurapix-high", "neurapix-default", "neurapix-low")
CPU_QUEUE = "neurapix-cpu"
DISPATCH_QUEUES = (CHECKS_QUEUE, *PRIORITY_QUEUES)
QUEUE_NAMES = (*DISPATCH_QUEUES, CPU_QUEUE)
HIGH_PRIORITY, LOW_PRIORITY = 50, 0
CHECK_TIMEOUT_SECONDS = 180  # one status request plus the output download and its checks


def queue_name(priority):
    if priority >= HIGH_PRIORITY:
        return PRIORITY_QUEUES[0]
    return PRIORITY_QUEUES[1] if priority >= LOW_PRIORITY else PRIORITY_QUEUES[2]


def redis_connection(app=None):
    app = app or current_app
    conn = app.extensions.get("neurapix_redis")
    if conn is None:
        conn = app.extensions["neurapix_redis"] = redis.Redis.from_url(app.config["REDIS_URL"])
    return conn


def queues(app=None, names=QUEUE_NAMES):
    conn = redis_connection(app)
    return [Queue(name, connection=conn) for name in names]


def _in_process(app, task, args):
    module, _, name = task.rpartition(".")
    with app.app_context():
        getattr(importlib.import_module(module), name)(*args)


def _put(name, task, args, timeout_seconds, delay):
    app = current_app._get_current_object()
    if app.config["REDIS_URL"]:
        queue = Queue(name, connection=redis_connection(app))
        options = dict(job_timeout=int(timeout_seconds), result_ttl=0, failure_ttl=86400)
        if delay > 0:
            queue.enqueue_in(timedelta(seconds=delay), task, *args, **options)
        else:
            queue.enqueue(task, *args, **options)
        return
    pool = app.extensions.get("neurapix_pool")
    if pool is None:
        pool = app.extensions["neurapix_pool"] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jobs")
    if delay > 0:
        timer = threading.Timer(delay, pool.submit, (_in_process, app, task, args))
        timer.daemon = True
        timer.start()
    else:
        pool.submit(_in_process, app, task, args)


def enqueue(job_id, priority, timeout_seconds, cpu=False, delay=0):
    """Hand a job to the workers (after `delay` seconds); raises if the queue cannot take it."""
    _put(CPU_QUEUE if cpu else queue_name(priority), "app.tasks.process_job", (job_id,), timeout_seconds, delay)


def enqueue_check(job_id, claim, delay=0, polls=0):
    """Check a job waiting at its provider once (after `delay` seconds)."""
    _put(CHECKS_QUEUE, "app.tasks.check_job", (job_id, claim, polls), CHECK_TIMEOUT_SECONDS, delay)
