"""The job pipeline's promises: validated uploads, atomic credits, retries, timeouts, refunds once."""
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import CreditLedger, Job
from app.services import jobs
from app.tasks import process_job
from tests import pipeline as p
from tests.contract_servers import ReplicateServer, RunPodServer
from tests.helpers import csrf_token, login, make_user, post
from tests.images import image_bytes, noise_png, png_header_only, truncated_jpeg


def upload(client, key, data, filename="photo.png"):
    return client.post(f"/f/{key}", data={"csrf_token": csrf_token(client), "image": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def test_customer_uploads_and_gets_a_processed_image(app, client):
    with app.app_context():
        p.local_function("upscale", operation="upscale", price_per_use=2)
        user = p.funded_customer(5)
    login(client, user)
    resp = upload(client, "upscale", image_bytes(size=(40, 30)))
    assert resp.status_code == 302
    job_url = resp.headers["Location"]
    job_id = int(job_url.rsplit("/", 1)[1])
    assert client.get(f"{job_url}.json").get_json()["status"] == "queued"
    assert f"job #{job_id}" in client.get(job_url).get_data(as_text=True)

    p.drain(app)
    state = client.get(f"{job_url}.json").get_json()
    assert state["status"] == "done", state
    result = client.get(state["output_url"])
    assert result.status_code == 200 and result.mimetype == "image/png"
    assert Image.open(io.BytesIO(result.data)).size == (80, 60)
    download = client.get(state["output_url"] + "?download=1")
    assert "attachment" in download.headers["Content-Disposition"]
    with app.app_context():
        assert p.balance(user.id) == 3 == p.ledger_sum(user.id)
        lines = [line.message for line in p.job(job_id).logs]
        assert lines[0].startswith("Submitted PNG 40×30") and lines[-1].startswith("Done in")
    account = client.get("/account").get_data(as_text=True)
    assert f"/jobs/{job_id}" in account and "done" in account


def test_job_files_are_private_to_owner_and_staff(app, client):
    with app.app_context():
        p.local_function()
        owner = p.funded_customer(5)
        stranger, support = make_user("customer"), make_user("support")
        job = jobs.submit(owner, "enhance", image_bytes())
        job_id = job.id
    for user, status in ((stranger, 404), (support, 200), (owner, 200)):
        login(client, user)
        assert client.get(f"/jobs/{job_id}/input").status_code == status
        assert client.get(f"/jobs/{job_id}.json").status_code == status


@pytest.mark.parametrize("data,filename,status,message", [
    (b"this is plain text, not a picture", "photo.png", 400, "not a readable image"),
    (noise_png(), "big.png", 413, "accepts up to"),
    (png_header_only(20000, 20000), "bomb.png", 413, "the limit is"),
    (truncated_jpeg(), "cut.jpg", 400, "not a readable image"),
    (image_bytes(fmt="GIF"), "anim.gif", 415, "GIF images are not accepted"),
    (b"", "empty.png", 400, "Choose an image"),
])
def test_bad_uploads_are_refused_with_nothing_debited(app, client, data, filename, status, message):
    with app.app_context():
        p.local_function(max_file_size=1024 * 1024, allowed_formats=["PNG", "JPEG"])
        user = p.funded_customer(10)
    login(client, user)
    stored = set(Path(app.config["STORAGE_DIR"]).rglob("*"))
    resp = upload(client, "enhance", data, filename)
    assert resp.status_code == status
    assert message in resp.get_data(as_text=True)
    with app.app_context():
        assert p.balance(user.id) == 10 and p.jobs_count() == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)) == 1
    assert set(Path(app.config["STORAGE_DIR"]).rglob("*")) == stored


def test_submit_refuses_without_credits_banned_users_and_hidden_functions(app):
    with app.app_context():
        fn = p.local_function(price_per_use=3)
        poor = p.funded_customer(2)
        banned = p.funded_customer(10, is_banned=True)
        with pytest.raises(jobs.SubmitError, match="Not enough credits") as exc:
            jobs.submit(poor, "enhance", image_bytes())
        assert exc.value.status == 402
        with pytest.raises(jobs.SubmitError, match="suspended"):
            jobs.submit(banned, "enhance", image_bytes())
        db.session.get(type(fn), fn.id).enabled = False
        db.session.commit()
        with pytest.raises(jobs.SubmitError, match="not available"):
            jobs.submit(poor, "enhance", image_bytes())
        assert p.jobs_count() == 0 and p.balance(poor.id) == 2


def test_daily_limit_per_user_per_function(app):
    with app.app_context():
        p.local_function(daily_limit=2, price_per_use=1)
        user = p.funded_customer(10)
        jobs.submit(user, "enhance", image_bytes())
        jobs.submit(user, "enhance", image_bytes())
        with pytest.raises(jobs.SubmitError, match="daily limit") as exc:
            jobs.submit(user, "enhance", image_bytes())
        assert exc.value.status == 429
        assert p.balance(user.id) == 8 and p.jobs_count() == 2


def test_fifty_concurrent_submits_with_credits_for_ten(app):
    with app.app_context():
        p.local_function(price_per_use=3)
        user = p.funded_customer(30)
    data = image_bytes()

    def attempt(_):
        with app.app_context():
            try:
                jobs.submit(db.session.get(type(user), user.id), "enhance", data)
                return "ok"
            except jobs.SubmitError as exc:
                return exc.status

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("ok") == 10 and outcomes.count(402) == 40
    with app.app_context():
        assert p.balance(user.id) == 0 == p.ledger_sum(user.id)
        assert p.jobs_count() == 10


def test_provider_500_is_retried_then_failed_and_refunded_once(app):
    with ReplicateServer() as server, app.app_context():
        server.mode = "error500"
        fn = p.add_function(p.replicate_provider(server, retries=2), price_per_use=4)
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        job = p.job(job_id)
        assert job.status == "failed" and "500" in job.error
        assert job.attempts == 3 and len(server.paths("POST")) == 3
        assert p.refunds(job_id) == 1 and job.refunded
        assert p.balance(user.id) == 10 == p.ledger_sum(user.id)
        # A second pass over the same job (a duplicate delivery) refunds nothing more.
        process_job(job_id)
        jobs._finish(job_id, Job.id == job_id, "again")
        assert p.refunds(job_id) == 1 and p.balance(user.id) == 10


def test_provider_that_recovers_within_retries_succeeds(app):
    with ReplicateServer() as server, app.app_context():
        server.mode, server.fail_count = "error_then_ok", 2
        fn = p.add_function(p.replicate_provider(server, retries=2))
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        job = p.job(job_id)
        assert job.status == "done" and job.attempts == 3 and job.provider_job_id
        assert [line.attempt for line in job.logs if line.attempt] == [1, 2, 3]
        assert p.balance(user.id) == 7


def test_hanging_provider_times_out_is_cancelled_and_refunded_once(app):
    with RunPodServer() as server, app.app_context():
        server.mode = "hang"
        fn = p.add_function(p.runpod_provider(server, timeout=1, retries=1))
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        job = p.job(job_id)
        assert job.status == "failed" and "timeout" in job.error
        assert any(path.startswith("/v2/ep-test/cancel/") for path in server.paths("POST"))
        assert p.refunds(job_id) == 1 and p.balance(user.id) == 10 == p.ledger_sum(user.id)


def test_cancel_a_queued_job_refunds_at_once(app, client):
    with app.app_context():
        p.local_function()
        user = p.funded_customer(10)
        job_id = jobs.submit(user, "enhance", image_bytes()).id
    login(client, user)
    assert post(client, f"/jobs/{job_id}/cancel").status_code == 302
    p.drain(app)  # the queued RQ message finds the job cancelled and does nothing
    with app.app_context():
        job = p.job(job_id)
        assert job.status == "cancelled" and job.output_ref is None and job.claims == 0
        assert p.balance(user.id) == 10 and p.refunds(job_id) == 1


def test_cancel_while_waiting_cancels_at_the_provider_and_refunds_once(app):
    with ReplicateServer() as server:
        server.mode = "hang"
        with app.app_context():
            fn = p.add_function(p.replicate_provider(server, timeout=30))
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            process_job(job_id)  # submits to the provider and returns at once
            job = p.job(job_id)
            assert job.status == "waiting" and job.provider_job_id and len(server.paths("POST")) == 1
            assert jobs.cancel(job_id) == "Cancel requested; the provider is being stopped."
            assert jobs.cancel(job_id) == "Cancel requested; the provider is being stopped."  # a second click
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "cancelled", [line.message for line in job.logs]
            assert [path for path in server.paths("POST") if path.endswith("/cancel")] == \
                [f"/v1/predictions/{job.provider_job_id}/cancel"]
            assert p.refunds(job_id) == 1 and p.balance(user.id) == 10 == p.ledger_sum(user.id)


def test_admin_retry_of_a_failed_job_is_logged_and_not_charged_again(app, client):
    with ReplicateServer() as server, app.app_context():
        server.mode = "fail"
        fn = p.add_function(p.replicate_provider(server, retries=0), price_per_use=4)
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        assert p.job(job_id).status == "failed"
        support = make_user("support")
        login(client, support)
        server.mode = "ok"
        resp = post(client, "/admin/jobs/action/", {"action": "retry", "rowid": [job_id], "url": "/admin/jobs/"})
        assert resp.status_code == 302
        p.drain(app)
        job = p.job(job_id)
        assert job.status == "done"
        assert any(f"Retried by {support.email}" in line.message for line in job.logs)
        debits = db.session.scalar(sa.select(sa.func.count()).select_from(CreditLedger)
                                   .where(CreditLedger.job_id == job_id, CreditLedger.kind == "debit"))
        assert debits == 1 and p.balance(user.id) == p.ledger_sum(user.id)
    detail = client.get(f"/admin/jobs/details/?id={job_id}").get_data(as_text=True)
    assert "Attempt 1 failed" in detail and "Retried by" in detail


def test_queue_down_means_refund_and_a_clear_error(app, monkeypatch):
    with app.app_context():
        p.local_function()
        user = p.funded_customer(10)
        # Nothing listens on port 1: the queue is down.
        monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
        monkeypatch.delitem(app.extensions, "neurapix_redis", raising=False)
        with pytest.raises(jobs.SubmitError, match="refunded") as exc:
            jobs.submit(user, "enhance", image_bytes())
        assert exc.value.status == 503
        job = db.session.scalars(sa.select(Job)).one()
        assert job.status == "failed" and job.refunded and p.balance(user.id) == 10


def test_without_redis_jobs_run_in_process(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", None)
    with app.app_context():
        p.local_function(operation="hdr")
        user = p.funded_customer(10)
        job_id = jobs.submit(user, "enhance", image_bytes()).id
        deadline = time.monotonic() + 10
        while p.job(job_id).status in ("queued", "processing") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.job(job_id).status == "done"
    app.extensions.pop("neurapix_pool").shutdown()


BUSINESS_CODE = ["app/services", "app/tasks.py", "app/site", "app/api", "app/admin"]


def test_business_code_never_names_a_provider():
    from app.providers import registry

    root = Path(__file__).resolve().parent.parent
    names = "|".join(re.escape(k) for k in registry.available())
    pattern = re.compile(rf"""["']({names})["']|\b(Replicate|RunPod|Pillow)\b""", re.I)
    offenders = []
    for place in BUSINESS_CODE:
        for path in sorted((root / place).rglob("*.py")) if (root / place).is_dir() else [root / place]:
            if path.exists():
                offenders += [f"{path.relative_to(root)}:{n}" for n, line in
                              enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
