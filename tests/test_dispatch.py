"""Remote jobs do not hold a worker: submitted, then finished by a provider webhook or a scheduled poll, in the
same idempotent way; forged webhooks change nothing; one worker process keeps many jobs in flight."""
import json
import threading
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, CreditLedger, FunctionFallback, Job, Provider
from app.services import jobs, queue, settings, storage
from app.services.crypto import decrypt_json
from app.tasks import check_job, process_job
from tests import pipeline as p
from tests.contract_servers import ReplicateServer, RunPodServer
from tests.helpers import login, post
from tests.images import image_bytes
from tests.workers import WorkerProcess, wait_for


def _job(app, job_id):
    with app.app_context():
        job = p.job(job_id)
        db.session.expunge(job)
        return job


def _public_url(url):
    settings.update({"site.public_url": url})


def _files(app):
    return set(Path(app.config["STORAGE_DIR"]).rglob("*.*"))


def _debits(job_id):
    return db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)
                             .where(CreditLedger.job_id == job_id, CreditLedger.kind == "debit"))


def _pending_checks(app):
    return redis.Redis.from_url(app.config["REDIS_URL"]).llen(f"rq:queue:{queue.CHECKS_QUEUE}")


def test_webhook_completes_a_job_without_waiting_for_a_poll(app, live_server):
    with ReplicateServer(latency=0.5) as server:
        with app.app_context():
            _public_url(live_server)
            provider = p.replicate_provider(server, timeout=120, webhook_poll_interval=60)
            provider_id = provider.id
            fn = p.add_function(provider, price_per_use=2)
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
        with WorkerProcess():
            wait_for(lambda: _job(app, job_id).status == "done", timeout=20, what="the webhook to finish the job")
        job = _job(app, job_id)
        create = next(r for r in server.requests if r["method"] == "POST")
        assert create["json"]["webhook"] == f"{live_server}/webhooks/jobs/{job_id}/{job.webhook_token}"
        assert create["json"]["webhook_events_filter"] == ["completed"] and len(job.webhook_token) >= 40
        assert server.webhooks == [(job.provider_job_id, create["json"]["webhook"], 200)]
        # One status request, the one the webhook asked for (the fallback poll was a minute away).
        assert server.paths("GET").count(f"/v1/predictions/{job.provider_job_id}") == 1
        assert server.paths("GET").count("/v1/webhooks/default/secret") == 1
        with app.app_context():
            stored = db.session.get(Provider, provider_id).secrets
            assert server.webhook_secret not in stored  # encrypted at rest
            assert decrypt_json(stored)["webhook_secret"] == server.webhook_secret
            assert p.balance(user.id) == 8 == p.ledger_sum(user.id)


def test_poll_completes_a_job_when_no_webhook_arrives(app, live_server):
    with ReplicateServer(latency=0.3) as server:
        server.deliver_webhooks = False  # lost on the way
        with app.app_context():
            _public_url(live_server)
            fn = p.add_function(p.replicate_provider(server, webhook_poll_interval=1), price_per_use=2)
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "done" and server.webhooks == []
            assert server.paths("GET").count(f"/v1/predictions/{job.provider_job_id}") >= 1
            assert p.balance(user.id) == 8 == p.ledger_sum(user.id)


def test_without_a_public_url_jobs_are_polled_and_no_webhook_is_asked_for(app):
    with RunPodServer(latency=0.2) as server:
        with app.app_context():
            fn = p.add_function(p.runpod_provider(server))
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        with app.app_context():
            assert p.job(job_id).status == "done" and p.job(job_id).webhook_token is None
        assert "webhook" not in server.requests[0]["json"] and server.webhooks == []


def test_webhook_and_polls_racing_store_one_output_and_charge_once(app, live_server):
    with ReplicateServer(latency=0.2) as server:
        server.deliver_webhooks = False  # delivered below, at the same moment as the polls
        with app.app_context():
            _public_url(live_server)
            fn = p.add_function(p.replicate_provider(server, webhook_poll_interval=1), price_per_use=4)
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            process_job(job_id)
            job = p.job(job_id)
            claim, remote_id = job.claims, job.provider_job_id
        wait_for(lambda: server.jobs[remote_id]["state"] == "succeeded", what="the prediction to end")
        before = _files(app)
        start = threading.Barrier(5)

        def poll():
            with app.app_context():
                start.wait()
                check_job(job_id, claim)

        def webhook():
            start.wait()
            server.send_webhook(remote_id)

        racers = [threading.Thread(target=poll) for _ in range(4)] + [threading.Thread(target=webhook)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)
        p.drain(app)  # the check the webhook asked for, and the scheduled fallback poll
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "done"
            assert sum(line.message.startswith("Done in") for line in job.logs) == 1
            assert len(_files(app) - before) == 1 and storage.read(job.output_ref)
            assert server.paths("GET").count(f"/files/{remote_id}.png") == 1  # one download, by the winner
            assert _debits(job_id) == 1 and p.refunds(job_id) == 0
            assert p.balance(user.id) == 6 == p.ledger_sum(user.id)


def test_forged_and_duplicate_replicate_webhooks_are_refused_and_change_nothing(app, client, live_server):
    with ReplicateServer(latency=0.2) as server:
        server.deliver_webhooks = False
        with app.app_context():
            _public_url(live_server)
            fn = p.add_function(p.replicate_provider(server, webhook_poll_interval=60), price_per_use=3)
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            process_job(job_id)
            job = p.job(job_id)
            token, remote_id = job.webhook_token, job.provider_job_id
        wait_for(lambda: server.jobs[remote_id]["state"] == "succeeded", what="the prediction to end")
        body = json.dumps(server._prediction(server.jobs[remote_id])).encode()
        good = server._webhook_headers(server.jobs[remote_id], body)
        url = f"/webhooks/jobs/{job_id}/{token}"

        def deliver(headers, to=url, data=body):
            return client.post(to, data=data, headers={"Content-Type": "application/json", **headers})

        with app.app_context():
            logs_before = len(p.job(job_id).logs)
        forged = [
            (deliver({**good, "webhook-signature": "v1,bm90IHRoZSByaWdodCBzaWduYXR1cmUgYXQgYWxsIQ=="}), 400),
            (deliver(good, data=body.replace(b"succeeded", b"failed")), 400),  # body changed after signing
            (deliver(server._webhook_headers(server.jobs[remote_id], body, stamp=time.time() - 600)),
             400),  # a replay: stale timestamp
            (deliver({}), 400),  # no signature at all
            (deliver(good, to=f"/webhooks/jobs/{job_id}/{'x' * len(token)}"), 404),  # wrong job token
            (deliver(good, to=f"/webhooks/jobs/{job_id + 1}/{token}"), 404),  # another job's number
        ]
        assert [resp.status_code for resp, _want in forged] == [want for _resp, want in forged]
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "waiting" and len(job.logs) == logs_before and _pending_checks(app) == 0

        assert deliver(good).get_json() == {"status": "accepted"}
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "done"
            output_ref, logs_after = job.output_ref, len(job.logs)
        # The provider delivers the same webhook again: answered, and nothing changes.
        assert deliver(good).get_json() == {"status": "ignored"}
        assert _pending_checks(app) == 0
        with app.app_context():
            job = p.job(job_id)
            assert (job.status, job.output_ref, len(job.logs)) == ("done", output_ref, logs_after)
            assert _debits(job_id) == 1 and p.refunds(job_id) == 0 and p.balance(user.id) == 7


def test_runpod_webhook_needs_the_jobs_unguessable_token(app, client, live_server):
    with RunPodServer(latency=0.2) as server:
        server.deliver_webhooks = False
        with app.app_context():
            _public_url(live_server)
            fn = p.add_function(p.runpod_provider(server, webhook_poll_interval=60))
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            process_job(job_id)
            job = p.job(job_id)
            token, remote_id = job.webhook_token, job.provider_job_id
        assert server.requests[0]["json"]["webhook"] == f"{live_server}/webhooks/jobs/{job_id}/{token}"
        wait_for(lambda: server.jobs[remote_id]["state"] == "succeeded", what="the job to end")
        body = json.dumps(server._job_body(server.jobs[remote_id]))
        wrong = ("B" if token[0] == "A" else "A") + token[1:]  # one character off
        assert client.post(f"/webhooks/jobs/{job_id}/{wrong}", data=body).status_code == 404
        assert client.post(f"/webhooks/jobs/{job_id}/", data=body).status_code == 404
        assert _pending_checks(app) == 0 and _job(app, job_id).status == "waiting"
        assert client.post(f"/webhooks/jobs/{job_id}/{token}", data=body).get_json() == {"status": "accepted"}
        p.drain(app)
        assert _job(app, job_id).status == "done"


def test_one_worker_process_keeps_a_hundred_remote_jobs_in_flight(app):
    with ReplicateServer(latency=10) as server:
        with app.app_context():
            fn = p.add_function(p.replicate_provider(server, timeout=60, poll_interval=1), price_per_use=1)
            users = [p.funded_customer(12) for _ in range(10)]
            ids = [jobs.submit(users[n % 10], fn.key, image_bytes()).id for n in range(100)]
            user_ids = [u.id for u in users]

        def finished():
            with app.app_context():
                return db.session.scalar(sa.select(sa.func.count()).select_from(Job)
                                         .where(Job.id.in_(ids), Job.status.in_(("done", "failed", "cancelled"))))

        with WorkerProcess("dispatch"):
            wait_for(lambda: finished() == 100, timeout=120, interval=0.5, what="100 jobs to finish")
        assert server.peak_open >= 90  # one worker process had (nearly) all of them at the provider at once
        assert len(server.paths("POST")) == 100
        with app.app_context():
            statuses = db.session.scalars(sa.select(Job.status).where(Job.id.in_(ids))).all()
            assert statuses == ["done"] * 100
            for user_id in user_ids:
                assert p.balance(user_id) == 2 == p.ledger_sum(user_id)


def test_status_checks_reuse_the_connection_to_the_provider(app):
    with RunPodServer(polls_before_done=3) as server:
        with app.app_context():
            fn = p.add_function(p.runpod_provider(server))
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        assert _job(app, job_id).status == "done"
        assert len(server.paths("GET")) == 4  # three "in progress" answers, then the result
        assert len({r["peer"] for r in server.requests}) == 1  # create and every check over one connection


def test_customer_sees_a_waiting_job_as_running_and_can_cancel_it(app, client):
    with ReplicateServer(mode="hang") as server:
        with app.app_context():
            fn = p.add_function(p.replicate_provider(server, timeout=60), price_per_use=2)
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            process_job(job_id)
            assert p.job(job_id).status == "waiting"
        login(client, user)
        page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
        assert 'id="cancel"' in page and 'id="job-busy" hidden' not in page
        assert post(client, f"/jobs/{job_id}/cancel").status_code == 302
        p.drain(app)
        with app.app_context():
            assert p.job(job_id).status == "cancelled" and p.balance(user.id) == 10
        assert 'id="cancel"' not in client.get(f"/jobs/{job_id}").get_data(as_text=True)


def test_a_job_whose_function_was_deleted_mid_chain_fails_and_is_refunded(app):
    with RunPodServer() as primary, RunPodServer() as backup:
        with app.app_context():
            fn = p.add_function(p.runpod_provider(primary), price_per_use=3)
            fallback = p.add_provider("runpod", name="Backup", config={"endpoint": f"{backup.url}/v2/ep"},
                                      secrets={"api_key": backup.expected_token})
            db.session.add(FunctionFallback(function_id=fn.id, position=1, provider_id=fallback.id))
            db.session.commit()
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            # As after a hand-over: the job waits for its second provider when the owner deletes the function.
            db.session.execute(sa.update(Job).where(Job.id == job_id).values(step=1))
            db.session.delete(db.session.get(AIFunction, fn.id))
            db.session.commit()
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "failed" and "removed" in job.error
            assert p.refunds(job_id) == 1 and p.balance(user.id) == 10 == p.ledger_sum(user.id)
        assert primary.requests == [] and backup.requests == []
