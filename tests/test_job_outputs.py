"""What a job hands back: only verified images are stored, every stored file is served inert (nosniff, a
disposition, a sandbox CSP, never HTML or SVG), and a failed job tells its customer plain words."""
import base64
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Job
from app.services import jobs, storage
from tests import pipeline as p
from tests.contract_servers import CustomImageAPIServer, ReplicateServer, RunPodServer
from tests.helpers import form_values, login, make_user
from tests.images import image_bytes

KEY = "in-house-key"
HTML = b"<!doctype html><html><body><script>fetch('/account').then(r => r.text()).then(alert)</script></body></html>"
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)">'
       b"<script>alert(document.cookie)</script></svg>")
TEXT = b"Sorry, the model is overloaded. Here is some text instead of a picture."
HOSTILE = {"html": (HTML, "text/html"), "svg": (SVG, "image/svg+xml"), "text": (TEXT, "text/plain")}


def http_provider(server, style):
    """The generic HTTP provider on the in-house API: outputs as file links (polling) or base64 (convert)."""
    jobs_url = f"{server.url}/api/v2/jobs"
    common = {"headers": {"X-Api-Key": "{{secret.api_key}}"}, "body": {"task": {"picture": "{{image_base64}}"}},
              "timeout": 5, "retries": 0, "poll_interval": 0.05, "allow_hosts": ["127.0.0.1"]}
    if style == "url":
        config = {**common, "url": jobs_url, "poll_url": jobs_url + "/{{id}}", "id_pointer": "/job/uuid",
                  "status_pointer": "/job/state", "success_states": ["FINISHED"], "failure_states": ["ERRORED"],
                  "output_pointer": "/job/result/files/0/href"}
    else:
        config = {**common, "url": f"{server.url}/api/v2/convert", "output_pointer": "/output/b64"}
    return p.add_provider("http", name="In-house GPU", config=config, secrets={"api_key": KEY})


def stored_files(app):
    return {path for path in Path(app.config["STORAGE_DIR"]).rglob("*") if path.is_file()}


@pytest.mark.parametrize("style", ["url", "base64", "runpod-bytes"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_provider_returning_something_else_than_an_image_fails_the_job_and_refunds_once(app, client, kind, style):
    payload, claimed_type = HOSTILE[kind]
    server = RunPodServer(token=KEY) if style == "runpod-bytes" else CustomImageAPIServer(token=KEY)
    with server:
        server.output, server.output_type = payload, claimed_type
        with app.app_context():
            provider = p.runpod_provider(server, retries=0) if style == "runpod-bytes" else http_provider(server, style)
            fn = p.add_function(provider, price_per_use=4)
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
        before = stored_files(app)
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "failed" and "not an image" in job.error
            assert job.output_ref is None and job.output_content_type is None
            assert p.refunds(job_id) == 1 and p.balance(user.id) == 10 == p.ledger_sum(user.id)
        assert stored_files(app) == before  # nothing of the provider's answer was written
    login(client, user)
    assert client.get(f"/jobs/{job_id}/output").status_code == 404
    state = client.get(f"/jobs/{job_id}.json").get_json()
    assert state["output_url"] is None and state["balance"] == 10
    assert state["error"] == (f"The provider returned something that is not an image. Reference: job #{job_id}. "
                              "The 4 credits it cost were refunded to your balance.")
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "not an image" in page and server.url not in page and "In-house GPU" not in page


def test_outputs_are_judged_by_their_bytes_not_by_what_the_provider_calls_them(ctx):
    from app.providers.base import output_fields
    from app.services import outputs

    for payload, _type in HOSTILE.values():
        fields = output_fields("data:image/png;base64," + base64.b64encode(payload).decode())
        with pytest.raises(outputs.NotAnImage):
            outputs.verify(fields["output"])
    assert outputs.verify(image_bytes(fmt="JPEG", size=(20, 10))) == ("image/jpeg", (20, 10))
    for other in ("GIF", "BMP", "TIFF"):  # decodable, but not an output format we serve
        with pytest.raises(outputs.NotAnImage):
            outputs.verify(image_bytes(fmt=other))
    assert output_fields("file:///etc/passwd") == {"output_url": "file:///etc/passwd"}  # the fetcher refuses it


def test_test_provider_reports_a_non_image_output(app, client):
    with CustomImageAPIServer(token=KEY) as server:
        server.output, server.output_type = SVG, "image/svg+xml"
        with app.app_context():
            provider_id = http_provider(server, "url").id
            login(client, make_user("admin"))
        data = form_values(client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True))
        outcome = client.post(f"/admin/providers/test?id={provider_id}", data=data).get_json()
        assert not outcome["ok"] and "not an image" in outcome["error"] and outcome["thumbnail"] is None


def test_stored_files_are_served_inert(app, client):
    with app.app_context():
        p.local_function()
        user = p.funded_customer(5)
        job_id = jobs.submit(user, "enhance", image_bytes()).id
    p.drain(app)
    login(client, user)
    for which in ("input", "output"):
        resp = client.get(f"/jobs/{job_id}/{which}")
        assert resp.status_code == 200 and resp.mimetype == "image/png"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert resp.headers["Content-Disposition"].startswith('inline; filename="neurapix-enhance-')
    download = client.get(f"/jobs/{job_id}/output?download=1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="neurapix-enhance-{job_id}.png"'

    # A row written before outputs were verified, typed as HTML: served as an opaque download, never as HTML.
    with app.app_context():
        ref = storage.save(HTML, ".html")
        job = db.session.get(Job, job_id)
        job.output_ref, job.output_content_type = ref, "text/html"
        db.session.commit()
    for url in (f"/jobs/{job_id}/output", f"/jobs/{job_id}/output?download=1"):
        resp = client.get(url)
        assert resp.mimetype == "application/octet-stream" and resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Disposition"] == f'attachment; filename="neurapix-enhance-{job_id}.bin"'
        assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_failed_job_tells_the_customer_plain_words_and_staff_the_details(app, client):
    with ReplicateServer() as server, app.app_context():
        server.mode = "error500"
        fn = p.add_function(p.replicate_provider(server, retries=0), price_per_use=3)
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        assert "answered 500" in p.job(job_id).error  # the details are kept, for staff
    login(client, user)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    state = client.get(f"/jobs/{job_id}.json").get_json()
    for shown in (page, state["error"]):
        assert "We could not process this image." in shown and f"Reference: job #{job_id}." in shown
        assert "The 3 credits it cost were refunded to your balance." in shown
        assert server.url not in shown and "Replicate" not in shown and "500" not in shown
    assert '<span id="balance">10</span> credits' in page and state["balance"] == 10
    with app.app_context():
        login(client, make_user("support"))
    detail = client.get(f"/admin/jobs/details/?id={job_id}").get_data(as_text=True)
    assert "answered 500" in detail and server.url in detail and "Customer was told" in detail
