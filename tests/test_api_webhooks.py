"""Webhooks to client apps when jobs end: signed, delivered by RQ with retries, every attempt logged,
redelivered from the admin, refused for internal addresses. A real HTTP receiver on 127.0.0.1."""
import json
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app.extensions import db
from app.models import AuditLog, ClientApp, WebhookDelivery
from app.services import app_webhooks, apps, settings
from tests import pipeline as p
from tests.helpers import login, make_user, post
from tests.test_api import call, gen, make_app

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_sample():
    """The verification sample exactly as the README shows it, as a function."""
    code = re.search(r"```python\n(.*?def verify_webhook.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (our own README's sample)
    return namespace["verify_webhook"]


class Receiver:
    """A client app's webhook endpoint: records every request, answers `failures` 500s first, then 200."""

    def __init__(self, failures=0):
        self.failures, self.received = failures, []

        @Request.application
        def receive(request):
            self.received.append((dict(request.headers), request.get_data()))
            if len(self.received) <= self.failures:
                return Response("upstream exploded", status=500)
            return Response('{"ok": true}', mimetype="application/json")

        self.server = make_server("127.0.0.1", 0, receive, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/neurapix"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


@pytest.fixture
def hooked(ctx):
    """An app with a webhook URL on a local receiver (allowed by the API's allow-list) and a secret."""
    p.local_function("enhance", operation="noop")
    settings.update({"api.allow_hosts": "127.0.0.1"})
    receiver = Receiver()
    with receiver:
        app_id, raw = make_app(webhook_url=receiver.url)
        secret = apps.rotate_webhook_secret(app_id)
        yield app_id, raw, secret, receiver


def _deliveries():
    return db.session.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id)).all()


def test_a_finished_job_sends_a_signed_webhook_the_readme_sample_verifies(app, client, hooked):
    app_id, raw, secret, receiver = hooked
    job_id = gen(client, raw, user="ios-user").get_json()["job_id"]
    p.drain(app)
    ((headers, body),) = receiver.received
    verify = readme_sample()
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body.replace(b"succeeded", b"failed"))
    assert not verify("whsec_other", headers, body)
    sent = json.loads(body)
    assert sent == {"event": "job.completed", "job_id": job_id, "status": "succeeded", "user_id": "ios-user",
                    "function": "enhance", "outputs": sent["outputs"], "tokens_charged": 3,
                    "completed_at": sent["completed_at"]}
    assert sent["outputs"][0]["url"].endswith(f"/api/v1/jobs/{job_id}/output")
    (delivery,) = _deliveries()
    assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == ("delivered", 1, 200)
    assert headers["X-Webhook-Id"] == str(delivery.id)
    (attempt,) = delivery.attempts
    assert attempt["status_code"] == 200 and attempt["latency_ms"] >= 0 and '"ok"' in attempt["excerpt"]


def test_a_rotated_secret_signs_from_then_on(app, client, hooked):
    app_id, raw, old, receiver = hooked
    new = apps.rotate_webhook_secret(app_id)
    gen(client, raw)
    p.drain(app)
    ((headers, body),) = receiver.received
    verify = readme_sample()
    assert verify(new, headers, body) and not verify(old, headers, body)
    assert db.session.get(ClientApp, app_id).webhook_secret not in (new, old)  # stored encrypted
    assert new not in str(db.session.scalars(sa.select(AuditLog.new_values)).all())


def test_a_500_is_retried_then_delivered_with_every_attempt_logged(app, client, hooked):
    _app_id, raw, secret, receiver = hooked
    receiver.failures = 1
    gen(client, raw)
    p.drain(app)
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["X-Webhook-Id"] == receiver.received[1][0]["X-Webhook-Id"]
    assert all(readme_sample()(secret, h, b) for h, b in receiver.received)
    (delivery,) = _deliveries()
    assert (delivery.status, delivery.attempt_count) == ("delivered", 2)
    failed, ok = delivery.attempts
    assert failed["status_code"] == 500 and failed["excerpt"] == "upstream exploded" and "500" in failed["error"]
    assert ok["status_code"] == 200 and ok["error"] is None


def test_a_receiver_that_keeps_failing_ends_failed_then_staff_redeliver(app, client, hooked):
    _app_id, raw, _secret, receiver = hooked
    receiver.failures = 99
    gen(client, raw)
    p.drain(app)
    (delivery,) = _deliveries()
    # One try plus one retry per WEBHOOK_RETRY_SECONDS entry (two in testing).
    assert (delivery.status, delivery.attempt_count) == ("failed", 3) and len(receiver.received) == 3
    receiver.failures = 0
    # Each client in its own app context: requests sharing one would share Flask-Login's user in `g`.
    with app.app_context():
        viewer = app.test_client()
        login(viewer, make_user("viewer"))
        assert post(viewer, "/admin/webhook_deliveries/action/", {"action": "redeliver", "rowid": [delivery.id]}
                    ).status_code == 403
    with app.app_context():
        login(client, make_user("admin"))
        resp = post(client, "/admin/webhook_deliveries/action/", {"action": "redeliver", "rowid": [delivery.id],
                                                                   "url": "/admin/webhook_deliveries/"})
        assert resp.status_code == 302
        page = client.get(f"/admin/webhook_deliveries/details/?id={delivery.id}").get_data(as_text=True)
        assert "upstream exploded" in page and "Attempt log" in page
    p.drain(app)
    db.session.expire_all()
    (delivery,) = _deliveries()
    assert (delivery.status, delivery.attempt_count) == ("delivered", 4) and len(receiver.received) == 4
    assert db.session.scalar(sa.select(sa.func.count(AuditLog.id)).where(AuditLog.action == "redeliver")) == 1


def test_cancelled_job_webhook_goes_to_the_requests_own_url(app, client, hooked):
    _app_id, raw, secret, receiver = hooked
    with Receiver() as own:
        job_id = gen(client, raw, webhook_url=own.url).get_json()["job_id"]
        call(client, "POST", f"/jobs/{job_id}/cancel", raw)
        p.drain(app)
        assert receiver.received == []
        ((headers, body),) = own.received
    assert readme_sample()(secret, headers, body)
    sent = json.loads(body)
    assert (sent["event"], sent["status"], sent["tokens_charged"], sent["outputs"]) == (
        "job.cancelled", "cancelled", 0, [])


def test_webhooks_to_internal_addresses_are_refused(app, client, hooked, loopback_only):
    _app_id, raw, _secret, receiver = hooked
    settings.update({"api.allow_hosts": ""})
    gen(client, raw)
    p.drain(app)
    assert receiver.received == []
    (delivery,) = _deliveries()
    assert delivery.status == "failed" and "internal address" in delivery.last_error


def test_without_redis_the_in_process_pool_retries_the_same_way(app, client, hooked):
    _app_id, raw, secret, receiver = hooked
    receiver.failures = 1
    job_id = gen(client, raw).get_json()["job_id"]
    call(client, "POST", f"/jobs/{job_id}/cancel", raw)  # the delivery row exists; RQ holds its task
    (delivery,) = _deliveries()
    app_webhooks.OUTBOX.in_process(app, delivery.id, [0, 0])
    db.session.expire_all()
    assert (db.session.get(WebhookDelivery, delivery.id).status, len(receiver.received)) == ("delivered", 2)
    assert readme_sample()(secret, *receiver.received[1])


def test_no_webhook_url_no_delivery(app, client, ctx):
    p.local_function("enhance", operation="noop")
    _app_id, raw = make_app("Quiet")
    gen(client, raw)
    p.drain(app)
    assert _deliveries() == []
