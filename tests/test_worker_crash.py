"""A worker killed with SIGKILL mid-job: the job never stays `processing`; it runs again once, or fails
and is refunded exactly once."""
import time

from app.extensions import db
from app.services import jobs
from tests import pipeline as p
from tests.contract_servers import RunPodServer
from tests.images import image_bytes
from tests.workers import WorkerProcess, wait_for

FAST_REAPER = {"JOB_LEASE_GRACE_SECONDS": 1, "REAPER_INTERVAL_SECONDS": 0.3}


def _job(app, job_id):
    with app.app_context():
        job = p.job(job_id)
        db.session.expunge(job)
        return job


def _submit_hanging_job(app, server):
    with app.app_context():
        fn = p.add_function(p.runpod_provider(server, timeout=2, retries=0), price_per_use=5)
        user = p.funded_customer(10)
        return jobs.submit(user, fn.key, image_bytes()).id, user.id


def _kill_once_running(app, server, job_id, claim):
    worker = WorkerProcess(**FAST_REAPER).start()
    polls_before = len(server.paths("GET"))
    wait_for(lambda: _job(app, job_id).claims == claim and len(server.paths("GET")) > polls_before,
             what=f"run {claim} to reach the provider")
    worker.kill()
    assert _job(app, job_id).status == "processing"


def test_killed_worker_job_is_run_again_by_another_worker(app):
    with RunPodServer() as server:
        server.mode = "hang"
        job_id, user_id = _submit_hanging_job(app, server)
        _kill_once_running(app, server, job_id, claim=1)

        server.mode = "ok"  # the provider recovers; the next run should finish the job
        with WorkerProcess(**FAST_REAPER):
            wait_for(lambda: _job(app, job_id).status == "done", timeout=30, what="the job to be re-run")
    with app.app_context():
        job = p.job(job_id)
        assert job.claims == 2 and not job.refunded
        assert any("stopped responding; queued again" in line.message for line in job.logs)
        assert p.balance(user_id) == 5 == p.ledger_sum(user_id)


def test_job_killed_twice_fails_and_is_refunded_once(app):
    with RunPodServer() as server:
        server.mode = "hang"
        job_id, user_id = _submit_hanging_job(app, server)
        _kill_once_running(app, server, job_id, claim=1)
        _kill_once_running(app, server, job_id, claim=2)

        time.sleep(3.5)  # past the lease (timeout 2 s + grace 1 s)
        with app.app_context():
            assert jobs.reap_stale() == 1
            assert jobs.reap_stale() == 0  # a second reaper pass finds nothing to do
            job = p.job(job_id)
            assert job.status == "failed" and "stopped responding" in job.error
            assert p.refunds(job_id) == 1
            assert p.balance(user_id) == 10 == p.ledger_sum(user_id)
