"""The job worker: an RQ worker with RQ's scheduler (delayed status checks and retries), plus a reaper that
resumes jobs whose worker died, in whatever state.

Procfile: `worker: python worker.py dispatch` (remote jobs: submits and status checks, many in flight per
process) and `cpu: python worker.py cpu` (work done on our own CPU); `python worker.py` alone takes every queue.
Tasks run in this process (SimpleWorker): each opens a fresh database session, so no pool is shared across a fork.
"""
import logging
import sys
import threading

from rq import SimpleWorker

from app import create_app
from app.extensions import db
from app.services import jobs, queue

log = logging.getLogger("neurapix.worker")
QUEUE_SETS = {"all": queue.QUEUE_NAMES, "dispatch": queue.DISPATCH_QUEUES, "cpu": (queue.CPU_QUEUE,)}


def reaper(app, stop):
    """Every REAPER_INTERVAL_SECONDS, resume jobs whose lease ran out (or refund them)."""
    while not stop.wait(app.config["REAPER_INTERVAL_SECONDS"]):
        with app.app_context():
            try:
                if count := jobs.reap_stale():
                    log.warning("reaper: %d job(s) had lost their worker or their status check", count)
            except Exception:
                log.exception("reaper pass failed")
            finally:
                db.session.remove()


def main(argv):
    which = argv[1] if len(argv) > 1 else "all"
    if which not in QUEUE_SETS:
        raise SystemExit(f"usage: worker.py [{'|'.join(QUEUE_SETS)}]")
    app = create_app()
    if not app.config["REDIS_URL"]:
        raise SystemExit("worker.py needs REDIS_URL; without it the web process runs jobs itself.")
    stop = threading.Event()
    threading.Thread(target=reaper, args=(app, stop), name="reaper", daemon=True).start()
    with app.app_context():
        jobs.reap_stale()  # a restart after a crash picks its orphans up at once
        db.session.remove()
        worker = SimpleWorker(queue.queues(app, QUEUE_SETS[which]), connection=queue.redis_connection(app))
        try:
            worker.work(with_scheduler=True)
        finally:
            stop.set()


if __name__ == "__main__":
    main(sys.argv)
