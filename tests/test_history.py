"""The studio's history: the last inputs come back, a job runs again with its settings, the results gallery
filters and pages, thumbnails are made once, a deleted result is gone (files too) and audited."""
import io
import re

import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import AuditLog, Job
from app.services import history, jobs, storage
from tests import pipeline as p
from tests.helpers import login, make_user, post
from tests.images import image_bytes

DEFINITION = [
    {"key": "prompt", "type": "prompt", "label": "Prompt"},
    {"key": "scale", "type": "select", "label": "Scale", "options": [2, 4], "default": 2},
    {"key": "seed", "type": "seed", "label": "Seed"},
]


def test_the_form_keeps_the_last_inputs_and_run_again_brings_the_seed(app, client):
    with app.app_context():
        fn = p.local_function("upscale", operation="upscale", parameters=DEFINITION, price_per_use=1)
        user = p.funded_customer(10)
        first = jobs.submit(user, fn.key, image_bytes(), params={"prompt": "first", "scale": "4", "seed": "77"})
        jobs.submit(user, fn.key, image_bytes(), params={"prompt": "second", "scale": "4"})
        other = p.funded_customer(10)
        theirs = jobs.submit(other, fn.key, image_bytes(), params={"prompt": "not yours", "seed": "5"})
    login(client, user)
    html = client.get("/f/upscale").get_data(as_text=True)
    assert ">second</textarea>" in html and re.search(r'<option value="4"\s+selected', html)
    assert 'id="param-seed" name="param-seed" min="0" max="4294967295" step="1" placeholder="Random"\n' in html
    assert 'value="77"' not in html  # the last seed is not kept: random again
    html = client.get(f"/f/upscale?from={first.id}").get_data(as_text=True)
    assert ">first</textarea>" in html and 'value="77"' in html
    # Someone else's job is never a source of settings.
    html = client.get(f"/f/upscale?from={theirs.id}").get_data(as_text=True)
    assert "not yours" not in html and ">second</textarea>" in html
    page = client.get(f"/jobs/{first.id}").get_data(as_text=True)
    assert f'href="/f/upscale?from={first.id}"' in page and "Run again with these settings" in page
    assert "<dt>Prompt</dt><dd>first</dd>" in page and "<dt>Seed</dt><dd>77</dd>" in page


def test_the_job_page_and_its_json_say_the_queue_position(app, client):
    with app.app_context():
        fn = p.local_function()
        user = p.funded_customer(20)
        ids = [jobs.submit(user, fn.key, image_bytes()).id for _ in range(3)]
    login(client, user)
    assert [client.get(f"/jobs/{i}.json").get_json()["queue_position"] for i in ids] == [1, 2, 3]
    assert "number 3 in the queue" in client.get(f"/jobs/{ids[2]}").get_data(as_text=True)
    p.drain(app)
    payload = client.get(f"/jobs/{ids[0]}.json").get_json()
    assert payload["queue_position"] is None and payload["status"] == "done" and payload["started_at"]


def _results(html):
    return [int(n) for n in re.findall(r'<li class="gallery-item" data-job="(\d+)"', html)]


def test_the_gallery_filters_by_function_and_status_and_pages(app, client):
    with app.app_context():
        enhance = p.local_function("enhance")
        upscale = p.local_function("upscale", operation="upscale")
        user = p.funded_customer(200)
        done = [jobs.submit(user, enhance.key, image_bytes()).id for _ in range(2)]
        p.drain(app)
        queued = jobs.submit(user, upscale.key, image_bytes()).id
        extra = [jobs.submit(user, enhance.key, image_bytes()).id for _ in range(history.PAGE_SIZE)]
        stranger = p.funded_customer(10)
        jobs.submit(stranger, enhance.key, image_bytes())
    login(client, user)
    first = client.get("/account/jobs").get_data(as_text=True)
    assert _results(first) == sorted(extra, reverse=True)
    assert "Page 1 of 2" in first and 'href="/account/jobs?page=2"' in first
    second = client.get("/account/jobs?page=2").get_data(as_text=True)
    assert _results(second) == [queued] + sorted(done, reverse=True)
    assert _results(client.get("/account/jobs?function=upscale").get_data(as_text=True)) == [queued]
    assert _results(client.get("/account/jobs?status=done").get_data(as_text=True)) == sorted(done, reverse=True)
    html = client.get("/account/jobs?function=upscale&status=done").get_data(as_text=True)
    assert _results(html) == [] and "No results match these filters" in html
    assert f'src="/jobs/{done[0]}/thumbnail"' in first or f'src="/jobs/{done[0]}/thumbnail"' in second


def test_the_gallery_is_empty_for_a_new_customer(app, client):
    with app.app_context():
        user = p.funded_customer(1)
    login(client, user)
    assert "No results yet" in client.get("/account/jobs").get_data(as_text=True)


def test_a_thumbnail_is_made_once_and_kept_in_storage(app, client, monkeypatch):
    with app.app_context():
        fn = p.local_function()
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes(size=(900, 600))).id
    p.drain(app)
    saved = []
    real_save = storage.save
    monkeypatch.setattr(storage, "save", lambda data, suffix: saved.append(suffix) or real_save(data, suffix))
    login(client, user)
    first = client.get(f"/jobs/{job_id}/thumbnail")
    second = client.get(f"/jobs/{job_id}/thumbnail")
    assert first.status_code == second.status_code == 200 and first.mimetype == "image/webp"
    assert first.data == second.data and saved == [".webp"]
    assert Image.open(io.BytesIO(first.data)).size == (320, 213)
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    with app.app_context():
        ref = p.job(job_id).thumbnail_ref
        assert storage.read(ref) == first.data
        stranger = p.funded_customer(1)
    login(client, stranger)
    assert client.get(f"/jobs/{job_id}/thumbnail").status_code == 404


def test_deleting_a_result_asks_first_removes_its_files_and_is_audited(app, client):
    with app.app_context():
        fn = p.local_function()
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        running = jobs.submit(user, fn.key, image_bytes()).id
        db.session.execute(sa.update(Job).where(Job.id == running).values(status="processing"))
        db.session.commit()
    p.drain(app)
    login(client, user)
    client.get(f"/jobs/{job_id}/thumbnail")
    with app.app_context():
        job = p.job(job_id)
        refs = [job.input_ref, job.output_ref, job.thumbnail_ref]
    page = client.get(f"/account/jobs/{job_id}/delete")
    assert page.status_code == 200 and "Delete job #" in page.get_data(as_text=True)
    with app.app_context():
        assert p.job(job_id).deleted_at is None  # asking is not deleting
    resp = post(client, f"/account/jobs/{job_id}/delete", {"submit": "Delete this result"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/jobs")
    with app.app_context():
        job = p.job(job_id)
        assert job.deleted_at is not None and job.output_ref is None
        assert p.balance(user.id) == 4 == p.ledger_sum(user.id)  # two jobs at 3 credits: nothing refunded
        for ref in refs:
            try:
                storage.read(ref)
            except storage.StorageError:
                continue
            raise AssertionError(f"{ref} is still stored")
        row = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "delete", AuditLog.entity == "Job")).one()
        assert row.entity_id == str(job_id) and row.actor_id == user.id
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert job_id not in _results(client.get("/account/jobs").get_data(as_text=True))
    # A running job cannot be deleted; someone else's job is not found.
    resp = post(client, f"/account/jobs/{running}/delete", {"submit": "Delete this result"}, follow_redirects=True)
    assert "still running" in resp.get_data(as_text=True)
    with app.app_context():
        assert p.job(running).deleted_at is None
        stranger = make_user("customer")
    login(client, stranger)
    assert client.get(f"/account/jobs/{running}/delete").status_code == 404
