"""REST API v1 for client apps (issue 14, seed 001): keys, app users and their credits, jobs, idempotency,
rate limits, isolation between apps, and the OpenAPI document. Real PostgreSQL, Redis and RQ."""
import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from app.extensions import db
from app.models import ApiIdempotency, ApiKey, AuditLog, ClientApp, CreditLedger, Job, User
from app.services import apps, settings
from tests import pipeline as p
from tests.helpers import login, make_user
from tests.images import image_bytes

PNG = image_bytes("PNG")
B64 = base64.b64encode(PNG).decode()


def make_app(name="PhotoMania", **fields):
    row = ClientApp(name=name, **{"starting_credits": 10, **fields})
    db.session.add(row)
    db.session.commit()
    _key, raw = apps.create_key(row.id, "test")
    return row.id, raw


STRENGTH = {"key": "strength", "type": "number", "label": "Strength", "min": 0, "max": 5, "step": 1, "default": 1}


@pytest.fixture
def tenant(ctx):
    """(app id, key, function key): an app whose users start with 10 credits, and a 3-credit local function
    taking a `strength` parameter."""
    fn = p.local_function("enhance", operation="noop", parameters=[STRENGTH])
    app_id, raw = make_app()
    return app_id, raw, fn.key


def call(client, method, path, key, user=None, **kwargs):
    headers = {"X-API-Key": key, **({"X-User-ID": user} if user else {}), **kwargs.pop("headers", {})}
    return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)


def gen(client, key, user="u-1", **body):
    return call(client, "POST", "/generate", key, user, json={"function": "enhance", "image_base64": B64, **body})


# --- keys ---


def test_a_key_is_shown_once_and_stored_only_as_its_hash(app, tenant):
    app_id, raw, _fn = tenant
    assert raw.startswith("npx_live_") and len(raw) > 40
    row = db.session.scalars(sa.select(ApiKey).where(ApiKey.app_id == app_id)).one()
    assert row.prefix == raw[:len(row.prefix)] and raw not in (row.key_hash, row.prefix)
    assert row.key_hash == apps._hash(raw)
    audit = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "create_key")).one()
    assert raw not in str(audit.new_values)


def test_missing_wrong_and_revoked_keys_get_401(app, client, tenant):
    app_id, raw, _fn = tenant
    assert client.get("/api/v1/functions").status_code == 401
    assert call(client, "GET", "/functions", "npx_live_nope").get_json() == {"error": "Invalid API key"}
    assert call(client, "GET", "/functions", raw).status_code == 200
    key = db.session.scalars(sa.select(ApiKey).where(ApiKey.app_id == app_id)).one()
    assert key.last_used_at is not None
    apps.revoke_key(key.id)
    resp = call(client, "GET", "/functions", raw)
    assert resp.status_code == 401 and resp.get_json() == {"error": "Invalid API key"}


def test_rotation_two_keys_work_until_the_old_is_revoked(app, client, tenant):
    app_id, old, _fn = tenant
    _row, new = apps.create_key(app_id, "rotation")
    assert call(client, "GET", "/functions", old).status_code == 200
    assert call(client, "GET", "/functions", new).status_code == 200
    old_id = db.session.scalar(sa.select(ApiKey.id).where(ApiKey.key_hash == apps._hash(old)))
    apps.revoke_key(old_id)
    assert call(client, "GET", "/functions", old).status_code == 401
    assert call(client, "GET", "/functions", new).status_code == 200


def test_a_disabled_app_and_the_api_switch_refuse(app, client, tenant):
    app_id, raw, _fn = tenant
    db.session.get(ClientApp, app_id).enabled = False
    db.session.commit()
    assert call(client, "GET", "/functions", raw).status_code == 401
    db.session.get(ClientApp, app_id).enabled = True
    db.session.commit()
    settings.update({"flags.api": False})
    assert call(client, "GET", "/functions", raw).status_code == 404


def test_session_cookies_are_not_accepted_and_csrf_does_not_apply(app, client, tenant):
    _app_id, raw, _fn = tenant
    with app.app_context():  # its own `g`, as a separate request would have
        login(client, make_user("admin"))
    assert client.get("/api/v1/functions").status_code == 401  # a staff session is no API key
    resp = gen(client, raw)  # a POST with no CSRF token
    assert resp.status_code == 202, resp.get_json()
    assert "Set-Cookie" not in resp.headers


# --- functions ---


def test_functions_list_what_the_app_may_use(app, client, tenant):
    app_id, raw, _fn = tenant
    provider = p.add_provider("local", name="Local upscale", config={"timeout": 30, "retries": 0})
    scale = {"key": "scale", "type": "select", "label": "Scale", "options": ["2", "4"], "default": "2"}
    p.add_function(provider, key="upscale", price_per_use=5, parameters=[scale],
                   provider_config={"operation": "upscale"})
    names = {f["key"]: f for f in call(client, "GET", "/functions", raw).get_json()["functions"]}
    assert set(names) == {"enhance", "upscale"}
    assert names["upscale"]["price"] == 5 and names["upscale"]["formats"] == ["JPEG", "PNG", "WEBP"]
    assert names["upscale"]["max_file_size"] > 0 and "daily_limit" in names["upscale"]
    assert names["upscale"]["parameters"] == [scale] and names["enhance"]["parameters"] == [STRENGTH]
    db.session.get(ClientApp, app_id).allowed_functions = ["upscale"]
    db.session.commit()
    assert [f["key"] for f in call(client, "GET", "/functions", raw).get_json()["functions"]] == ["upscale"]
    resp = gen(client, raw)
    assert resp.status_code == 404 and resp.get_json() == {"error": "Function not found: enhance"}


# --- generate and jobs ---


def test_generate_queues_a_job_charges_the_user_and_runs(app, client, tenant):
    app_id, raw, _fn = tenant
    resp = gen(client, raw, params={"strength": 2}, priority=1)
    assert resp.status_code == 202
    body = resp.get_json()
    assert body == {"job_id": body["job_id"], "status": "queued", "function": "enhance", "tokens_charged": 3,
                    "user_balance": 7}
    job = db.session.get(Job, body["job_id"])
    user = db.session.get(User, job.user_id)
    assert (job.app_id, job.params, user.app_id, user.external_id, user.email) == (
        app_id, {"strength": 2}, app_id, "u-1", None)
    assert p.ledger_sum(user.id) == user.balance == 7  # starting credits and the debit, one ledger
    db.session.commit()  # requests here share this test's session: let them read the job afresh
    p.drain(app)
    got = call(client, "GET", f"/jobs/{job.id}", raw).get_json()
    assert got["status"] == "succeeded" and got["user_id"] == "u-1" and got["tokens_charged"] == 3
    assert got["outputs"][0]["index"] == 0 and got["completed_at"] and got["provider_used"] == "local"
    out = client.get(got["outputs"][0]["url"].replace("http://localhost", ""), headers={"X-API-Key": raw})
    assert out.status_code == 200 and out.mimetype == "image/png" and out.headers["X-Content-Type-Options"] == "nosniff"


def test_generate_checks_params_against_the_functions_parameters_and_charges_nothing_when_refused(app, client,
                                                                                                   tenant):
    _app_id, raw, _fn = tenant
    for params in ({"strength": 9}, {"strength": "hard"}, {"unknown": 1}):
        resp = gen(client, raw, params=params)
        assert resp.status_code == 400, params
        body = resp.get_json()
        assert body["error"] == "Invalid input" and list(body["details"]) == [f"params.{next(iter(params))}"]
    assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0
    user = db.session.scalar(sa.select(User).where(User.external_id == "u-1"))
    assert user.balance == 10 and p.ledger_sum(user.id) == 10


def test_generate_by_multipart_and_by_url(app, client, tenant, loopback_only):
    _app_id, raw, _fn = tenant
    resp = call(client, "POST", "/generate", raw, "u-2", content_type="multipart/form-data",
                data={"function": "enhance", "params": '{"strength": 1}', "image": (io.BytesIO(PNG), "x.png")})
    assert resp.status_code == 202, resp.get_json()
    with ImageHost() as host:
        refused = gen(client, raw, image_base64=None, image_url=f"{host.url}/image.png")
        assert refused.status_code == 400 and "internal address" in refused.get_json()["details"]["image"]
        assert host.hits == 0  # refused at the decision: nothing was sent
        settings.update({"api.allow_hosts": "127.0.0.1"})
        resp = gen(client, raw, image_base64=None, image_url=f"{host.url}/image.png")
        assert resp.status_code == 202, resp.get_json()
        assert host.hits == 1


def test_generate_errors_have_the_documented_bodies(app, client, tenant):
    _app_id, raw, _fn = tenant
    resp = call(client, "POST", "/generate", raw, json={"function": "enhance", "image_base64": B64})
    assert resp.status_code == 400 and resp.get_json() == {
        "error": "Invalid input", "details": {"X-User-ID": resp.get_json()["details"]["X-User-ID"]}}
    resp = gen(client, raw, priority=0, colour="red")
    assert resp.status_code == 400 and {"priority", "colour"} <= set(resp.get_json()["details"])
    resp = gen(client, raw, image_base64="not base64!")
    assert resp.status_code == 400 and "base64" in resp.get_json()["details"]["image"]
    resp = gen(client, raw, image_base64=base64.b64encode(b"GIF89a not allowed").decode())
    assert resp.status_code == 400 and resp.get_json()["error"] == "Invalid input"
    resp = gen(client, raw, image_url="https://example.com/x.png")
    assert resp.status_code == 400 and "image_url" in resp.get_json()["details"]
    resp = gen(client, raw, function="nope")
    assert resp.status_code == 404 and resp.get_json() == {"error": "Function not found: nope"}
    assert call(client, "GET", "/jobs/999", raw).get_json() == {"error": "Job not found"}
    for _ in range(3):
        assert gen(client, raw, user="poor").status_code == 202
    resp = gen(client, raw, user="poor")
    assert resp.status_code == 402 and resp.get_json() == {"error": "Insufficient tokens", "balance": 1,
                                                           "required": 3}
    assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 3


def test_jobs_list_paginates_by_cursor_and_filters(app, client, tenant):
    _app_id, raw, _fn = tenant
    ids = [gen(client, raw, user=f"u{i % 2}").get_json()["job_id"] for i in range(5)]
    first = call(client, "GET", "/jobs?limit=2", raw).get_json()
    assert [j["job_id"] for j in first["jobs"]] == ids[::-1][:2] and first["next_cursor"] == ids[3]
    second = call(client, "GET", f"/jobs?limit=2&cursor={first['next_cursor']}", raw).get_json()
    third = call(client, "GET", f"/jobs?limit=2&cursor={second['next_cursor']}", raw).get_json()
    assert [j["job_id"] for j in second["jobs"] + third["jobs"]] == ids[::-1][2:] and third["next_cursor"] is None
    assert len(call(client, "GET", "/jobs", raw, "u0").get_json()["jobs"]) == 3
    assert call(client, "GET", "/jobs?status=succeeded", raw).get_json()["jobs"] == []
    assert len(call(client, "GET", "/jobs?status=queued", raw).get_json()["jobs"]) == 5
    bad = call(client, "GET", "/jobs?status=done&limit=500", raw)
    assert bad.status_code == 400 and {"status", "limit"} <= set(bad.get_json()["details"])


def test_cancel_refunds_a_queued_job_once(app, client, tenant):
    _app_id, raw, _fn = tenant
    job_id = gen(client, raw).get_json()["job_id"]
    resp = call(client, "POST", f"/jobs/{job_id}/cancel", raw)
    assert resp.status_code == 200 and resp.get_json()["status"] == "cancelled"
    assert call(client, "GET", "/users/u-1", raw).get_json()["token_balance"] == 10
    again = call(client, "POST", f"/jobs/{job_id}/cancel", raw)
    assert again.status_code == 409 and again.get_json() == {"error": "This job has already finished."}
    got = call(client, "GET", f"/jobs/{job_id}", raw).get_json()
    assert got["status"] == "cancelled" and got["tokens_charged"] == 0


def test_one_app_never_sees_anothers_users_jobs_or_functions(app, client, tenant):
    _app_id, raw, _fn = tenant
    p.local_function("secret-tool", operation="noop")
    _other_id, other = make_app("Other", allowed_functions=["secret-tool"])
    job_id = gen(client, raw, user="shared-id").get_json()["job_id"]
    assert call(client, "GET", f"/jobs/{job_id}", other).status_code == 404
    assert call(client, "POST", f"/jobs/{job_id}/cancel", other).status_code == 404
    assert call(client, "GET", f"/jobs/{job_id}/output", other).status_code == 404
    assert call(client, "GET", "/jobs", other).get_json()["jobs"] == []
    assert call(client, "GET", "/users/shared-id", other).status_code == 404
    assert [f["key"] for f in call(client, "GET", "/functions", other).get_json()["functions"]] == ["secret-tool"]
    assert gen(client, other, user="shared-id").status_code == 404
    # The same external id in another app is another user with its own balance.
    call(client, "POST", "/users/shared-id/tokens", other, json={"amount": 5, "reason": "promo"})
    assert call(client, "GET", "/users/shared-id", raw).get_json()["token_balance"] == 7
    assert call(client, "GET", "/users/shared-id", other).get_json()["token_balance"] == 15


# --- users and grants ---


def test_get_user_and_grant_tokens(app, client, tenant):
    _app_id, raw, _fn = tenant
    assert call(client, "GET", "/users/new-user", raw).get_json() == {"error": "User not found"}
    resp = call(client, "POST", "/users/new-user/tokens", raw,
                json={"amount": 100, "reason": "Monthly renewal", "idempotency_key": "sub_jan"})
    body = resp.get_json()
    assert resp.status_code == 200 and body == {"external_id": "new-user", "previous_balance": 10,
                                                "amount_added": 100, "new_balance": 110,
                                                "transaction_id": body["transaction_id"]}
    assert body["transaction_id"].startswith("txn_")
    again = call(client, "POST", "/users/new-user/tokens", raw,
                 json={"amount": 100, "reason": "Monthly renewal", "idempotency_key": "sub_jan"})
    assert again.get_json() == body  # replayed, not granted twice
    changed = call(client, "POST", "/users/new-user/tokens", raw,
                   json={"amount": 5, "reason": "Monthly renewal", "idempotency_key": "sub_jan"})
    assert changed.status_code == 409 and "different request" in changed.get_json()["error"]
    user = call(client, "GET", "/users/new-user", raw).get_json()
    assert (user["token_balance"], user["total_jobs"], user["successful_jobs"]) == (110, 0, 0)
    bad = call(client, "POST", "/users/new-user/tokens", raw, json={"amount": -1})
    assert bad.status_code == 400 and {"amount", "reason"} <= set(bad.get_json()["details"])


def test_batch_grant_is_all_or_nothing_and_idempotent(app, client, tenant):
    app_id, raw, _fn = tenant
    grants = [{"external_id": "a", "amount": 50, "reason": "Promo"}, {"external_id": "b", "amount": 50}]
    resp = call(client, "POST", "/users/tokens/batch", raw, json={"grants": grants, "idempotency_key": "promo1"})
    assert resp.status_code == 200 and resp.get_json()["count"] == 2 and resp.get_json()["total_amount"] == 100
    assert call(client, "POST", "/users/tokens/batch", raw,
                json={"grants": grants, "idempotency_key": "promo1"}).get_json() == resp.get_json()
    assert call(client, "GET", "/users/a", raw).get_json()["token_balance"] == 60
    # One invalid item: nothing happens, not even the valid ones.
    bad = call(client, "POST", "/users/tokens/batch", raw,
               json={"grants": [{"external_id": "c", "amount": 5}, {"external_id": "d", "amount": 0}]})
    assert bad.status_code == 400 and "grants.1.amount" in bad.get_json()["details"]
    assert call(client, "GET", "/users/c", raw).status_code == 404
    # A grant the database refuses part-way (a balance past the integer range) rolls the whole batch back.
    user_b = db.session.scalar(sa.select(User.id).where(User.app_id == app_id, User.external_id == "b"))
    db.session.execute(sa.update(User).where(User.id == user_b).values(balance=2**31 - 10))
    db.session.commit()
    failed = call(client, "POST", "/users/tokens/batch", raw,
                  json={"grants": [{"external_id": "a", "amount": 5}, {"external_id": "b", "amount": 50}]})
    assert failed.status_code == 400 and "nothing was granted" in failed.get_json()["details"]["grants"]
    assert call(client, "GET", "/users/a", raw).get_json()["token_balance"] == 60
    assert p.ledger_sum(db.session.scalar(sa.select(User.id).where(User.external_id == "a"))) == 60


# --- idempotency ---


def test_same_key_same_body_replays_changed_body_is_409(app, client, tenant):
    _app_id, raw, _fn = tenant
    first = gen(client, raw, idempotency_key="req_abc")
    again = gen(client, raw, idempotency_key="req_abc")
    assert first.status_code == again.status_code == 202 and first.get_json() == again.get_json()
    changed = gen(client, raw, idempotency_key="req_abc", priority=50)
    assert changed.status_code == 409 and changed.get_json() == {
        "error": "This idempotency_key was used with a different request."}
    assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 1


class Served:
    """The app on a real HTTP server on 127.0.0.1 (threaded), for tests that need concurrent requests."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def test_twenty_concurrent_identical_requests_make_one_job_and_one_charge(app, tenant):
    _app_id, raw, _fn = tenant
    body = {"function": "enhance", "image_base64": B64, "idempotency_key": "burst-1"}
    barrier = threading.Barrier(20)

    def send(_i):
        barrier.wait()
        return requests.post(f"{served.url}/api/v1/generate", json=body, timeout=30,
                             headers={"X-API-Key": raw, "X-User-ID": "racer"})

    with Served(app) as served, ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 1
    user_id = db.session.scalar(sa.select(User.id).where(User.external_id == "racer"))
    debits = db.session.scalar(sa.select(sa.func.count(CreditLedger.id))
                               .where(CreditLedger.user_id == user_id, CreditLedger.kind == "debit"))
    assert debits == 1 and p.balance(user_id) == 7
    assert db.session.scalar(sa.select(sa.func.count(ApiIdempotency.id))) == 1


# --- rate limits ---


def test_rate_limit_per_key_answers_429_with_headers(app, client, tenant):
    app_id, raw, _fn = tenant
    db.session.get(ClientApp, app_id).rate_limit_per_minute = 3
    db.session.commit()
    _row, second_key = apps.create_key(app_id, "second")
    seen = [call(client, "GET", "/functions", raw) for _ in range(3)]
    assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["2", "1", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" and int(r.headers["X-RateLimit-Reset"]) > 0 for r in seen)
    refused = call(client, "GET", "/functions", raw)
    assert refused.status_code == 429 and refused.get_json()["error"] == "Rate limit exceeded"
    assert 0 < refused.get_json()["retry_after"] <= 61 and refused.headers["Retry-After"] == str(
        refused.get_json()["retry_after"])
    assert call(client, "GET", "/functions", second_key).status_code == 200  # per key


def test_jobs_in_flight_limit(app, client, tenant):
    app_id, raw, _fn = tenant
    db.session.get(ClientApp, app_id).max_jobs_in_flight = 2
    db.session.commit()
    assert gen(client, raw, user="x").status_code == 202
    assert gen(client, raw, user="y").status_code == 202
    refused = gen(client, raw, user="z")
    assert refused.status_code == 429 and refused.get_json()["retry_after"] == 5
    assert refused.headers["Retry-After"] == "5"
    z = call(client, "GET", "/users/z", raw).get_json()
    assert z["token_balance"] == 10 and z["total_jobs"] == 0  # nothing charged
    p.drain(app)
    assert gen(client, raw, user="z").status_code == 202


class ImageHost:
    """Serves /image.png on 127.0.0.1 and counts requests."""

    def __init__(self):
        from werkzeug.wrappers import Response

        def serve(environ, start_response):
            self.hits += 1
            return Response(PNG, mimetype="image/png")(environ, start_response)

        self.hits = 0
        self.server = make_server("127.0.0.1", 0, serve)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def test_concurrent_submits_never_overrun_the_jobs_in_flight_limit(app, tenant):
    app_id, raw, _fn = tenant
    db.session.get(ClientApp, app_id).max_jobs_in_flight = 5
    db.session.commit()
    barrier = threading.Barrier(12)

    def send(n):
        barrier.wait()
        return requests.post(f"{served.url}/api/v1/generate", timeout=30,
                             json={"function": "enhance", "image_base64": B64},
                             headers={"X-API-Key": raw, "X-User-ID": f"user-{n}"}).status_code

    with Served(app) as served, ThreadPoolExecutor(12) as pool:
        codes = sorted(pool.map(send, range(12)))
    assert codes == [202] * 5 + [429] * 7
    assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 5
