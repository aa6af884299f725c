"""Rows a transaction writes for delivery in the background (emails, client app webhooks): their ids go to RQ,
with retries, once that transaction commits, and are dropped when it rolls back, so a worker never reads a row
that is not there. Without Redis (`make run`) a small thread pool gives the same retries."""
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from flask import current_app
from rq import Queue, Retry

from app.extensions import db
from app.services import queue as job_queue

log = logging.getLogger("neurapix.outbox")

_boxes = []


class Outbox:
    """One kind of delivery. `run(row_id, final)` delivers once and raises `failure` to be retried; `final`
    says no retry follows. `retry_setting` names the app config list of pauses between attempts."""

    def __init__(self, name, task, run, failure, retry_setting, job_timeout, threads=1):
        self.name, self.task, self.run, self.failure = name, task, run, failure
        self.retry_setting, self.job_timeout, self.threads = retry_setting, job_timeout, threads
        self.key = f"neurapix_outbox_{name.replace(' ', '_')}"
        _boxes.append(self)

    def add(self, row_id):
        """Deliver row_id once the caller's transaction commits."""
        db.session.info.setdefault(self.key, []).append(row_id)

    def enqueue(self, row_id):
        app = current_app._get_current_object()
        intervals = app.config[self.retry_setting]
        if app.config["REDIS_URL"]:
            Queue(job_queue.QUEUE_NAMES[1], connection=job_queue.redis_connection(app)).enqueue(
                self.task, row_id, retry=Retry(max=len(intervals), interval=intervals),
                job_timeout=self.job_timeout, result_ttl=0, failure_ttl=86400)
            return
        pool = app.extensions.get(self.key)
        if pool is None:
            pool = app.extensions[self.key] = ThreadPoolExecutor(max_workers=self.threads,
                                                                 thread_name_prefix=self.key)
        pool.submit(self.in_process, app, row_id, intervals)

    def in_process(self, app, row_id, intervals):
        """The retries RQ would give, in this process."""
        for pause in [*intervals, None]:
            with app.app_context():
                try:
                    self.run(row_id, final=pause is None)
                    return
                except self.failure:
                    pass
                finally:
                    db.session.remove()
            if pause is None:
                return
            time.sleep(pause)


def _after_commit(session):
    for box in _boxes:
        for row_id in session.info.pop(box.key, []):
            try:
                box.enqueue(row_id)
            except Exception:
                # The row stays queued/pending in its admin list (emails, webhook deliveries), never a failed
                # request: staff can see it and send it again.
                log.exception("%s %s could not be enqueued", box.name, row_id)


def _after_transaction_end(session, transaction):
    if transaction.parent is None:  # the outer transaction ended without a commit: its deliveries are void
        for box in _boxes:
            session.info.pop(box.key, None)


def init_app(app):
    if not getattr(init_app, "_listening", False):
        sa.event.listen(db.session, "after_commit", _after_commit)
        sa.event.listen(db.session, "after_transaction_end", _after_transaction_end)
        init_app._listening = True
