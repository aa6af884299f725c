"""The job worker: RQ workers with RQ's scheduler (delayed status checks and retries), plus a reaper that
resumes jobs whose worker died, in whatever state.

Procfile: `worker: python worker.py dispatch` (remote jobs: submits and status checks, many in flight per
process) and `cpu: python worker.py cpu` (work done on our own CPU); `python worker.py` alone takes every queue.
Tasks run in this process, in WORKER_THREADS threads (default 8 for dispatch: its tasks mostly wait on the
network; 1 for cpu), each with its own database session, so no connection is shared across a fork.
"""
import logging
import os
import sys
import threading
import time

from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from app import create_app
from app.extensions import db
from app.services import jobs, queue

log = logging.getLogger("neurapix.worker")
QUEUE_SETS = {"all": queue.QUEUE_NAMES, "dispatch": queue.DISPATCH_QUEUES, "cpu": (queue.CPU_QUEUE,)}
DEFAULT_THREADS = {"all": 8, "dispatch": 8, "cpu": 1}
STOP_WAIT_SECONDS = 30


class ThreadWorker(SimpleWorker):
    """A SimpleWorker for a thread other than the main one: signals belong to the main thread, so no handlers,
    and a task's timeout is enforced by a timer instead of SIGALRM."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


def _serve(app, worker):
    with app.app_context():
        worker.work(with_scheduler=False)


def _wait_for_busy(workers):
    """On shutdown, let the threads' tasks in progress end (each is one short step of a job); idle threads end
    with the process. A task cut off anyway is resumed by the reaper, like any lost worker's."""
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while time.monotonic() < deadline and any(w.get_state() == "busy" for w in workers):
        time.sleep(0.1)


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
        conn = queue.redis_connection(app)
        threads = int(os.environ.get("WORKER_THREADS") or DEFAULT_THREADS[which])
        helpers = [ThreadWorker(queue.queues(app, QUEUE_SETS[which]), connection=conn) for _ in range(threads - 1)]
        for helper in helpers:
            threading.Thread(target=_serve, args=(app, helper), name=helper.name, daemon=True).start()
        worker = SimpleWorker(queue.queues(app, QUEUE_SETS[which]), connection=conn)
        try:
            worker.work(with_scheduler=True)
        finally:
            _wait_for_busy(helpers)
            stop.set()


if __name__ == "__main__":
    main(sys.argv)
