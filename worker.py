"""The job worker: an RQ worker on REDIS_URL over the priority queues, plus a reaper for lost jobs.

Procfile: `worker: python worker.py`. Jobs run in this process (SimpleWorker): each task opens a
fresh database session, so there is no connection pool shared across a fork.
"""
import logging
import threading

from rq import SimpleWorker

from app import create_app
from app.extensions import db
from app.services import jobs, queue

log = logging.getLogger("neurapix.worker")


def reaper(app, stop):
    """Every REAPER_INTERVAL_SECONDS, give jobs of dead workers another run or a refund."""
    while not stop.wait(app.config["REAPER_INTERVAL_SECONDS"]):
        with app.app_context():
            try:
                if count := jobs.reap_stale():
                    log.warning("reaper: %d job(s) had lost their worker", count)
            except Exception:
                log.exception("reaper pass failed")
            finally:
                db.session.remove()


def main():
    app = create_app()
    if not app.config["REDIS_URL"]:
        raise SystemExit("worker.py needs REDIS_URL; without it the web process runs jobs itself.")
    stop = threading.Event()
    threading.Thread(target=reaper, args=(app, stop), name="reaper", daemon=True).start()
    with app.app_context():
        jobs.reap_stale()  # a restart after a crash picks its orphans up at once
        db.session.remove()
        worker = SimpleWorker(queue.queues(app), connection=queue.redis_connection(app))
        try:
            worker.work(with_scheduler=False)
        finally:
            stop.set()


if __name__ == "__main__":
    main()
