"""Provider admin tooling: validated configs, Test provider, fallback chains, the generic HTTP provider set
up through admin forms only, export/import/clone, and secrets that never appear in clear."""
import json
import logging

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, AuditLog, CreditLedger, FunctionFallback, Provider
from app.services import jobs
from app.services.crypto import decrypt_json
from tests import pipeline as p
from tests.contract_servers import CustomImageAPIServer, ReplicateServer, RunPodServer
from tests.helpers import form_values, login, make_user, post
from tests.images import image_bytes

TOKEN = "r8_sekrit_value_0042"


def _admin(app, client, role="admin"):
    with app.app_context():
        login(client, make_user(role))


def _count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# --- validation on save ---


def test_function_config_that_violates_the_schema_is_refused_and_row_unchanged(app, client):
    with app.app_context():
        fn = p.local_function()
        fn_id, before = fn.id, dict(fn.provider_config)
    _admin(app, client)
    page = client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True)
    assert "data-json-editor" in page and "Effective now: timeout 30" in page
    data = form_values(page)
    data["provider_config"] = '{"operation": "paint-it-black", "retries": -1}'
    resp = client.post(f"/admin/functions/edit/?id={fn_id}", data=data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "operation" in html and "retries" in html
    data["provider_config"] = '{"operation": oops'
    assert "Invalid JSON" in client.post(f"/admin/functions/edit/?id={fn_id}", data=data).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(AIFunction, fn_id).provider_config == before
        assert _count(AuditLog) == 0
    data["provider_config"] = '{"operation": "hdr", "timeout": 12}'
    assert client.post(f"/admin/functions/edit/?id={fn_id}", data=data).status_code == 302
    with app.app_context():
        assert db.session.get(AIFunction, fn_id).provider_config == {"operation": "hdr", "timeout": 12}


def test_provider_config_is_validated_against_its_plugin(app, client):
    _admin(app, client)
    form = {"name": "RunPod EU", "key": "runpod", "config": '{"endpoint": "https://api.runpod.ai/v2/x", '
                                                          '"retries": "many"}'}
    resp = post(client, "/admin/providers/new/", form)
    assert resp.status_code == 200 and "retries" in resp.get_data(as_text=True)
    with app.app_context():
        assert _count(Provider) == 0
    form["config"] = '{"endpoint": "https://api.runpod.ai/v2/x", "retries": 1}'
    assert post(client, "/admin/providers/new/", form).status_code == 302


def test_provider_form_offers_registry_keys_and_marks_dependents(app, client):
    with app.app_context():
        fn = p.local_function("upscale")
        provider_id, fn_id = fn.provider_id, fn.id
        p.add_provider("replicate", name="Off one", enabled=False, config={"endpoint": "https://x"})
    _admin(app, client)
    page = client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True)
    for key in ("local", "replicate", "runpod", "http"):
        assert f'value="{key}"' in page
    assert "Used by: upscale" in page and "data-confirm-disable" in page
    listing = client.get("/admin/providers/").get_data(as_text=True)
    assert "upscale" in listing
    function_page = client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True)
    assert function_page.index("Local upscale") < function_page.index("Off one (disabled)")


# --- Test provider ---


def test_test_provider_reports_success_latency_and_records_health(app, client):
    with ReplicateServer(token=TOKEN) as server:
        with app.app_context():
            provider = p.replicate_provider(server)
            provider_id = provider.id
        _admin(app, client)
        page = client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True)
        data = form_values(page)
        resp = client.post(f"/admin/providers/test?id={provider_id}", data=data)
        outcome = resp.get_json()
        assert outcome["ok"] and outcome["latency_ms"] >= 0 and outcome["provider_job_id"]
        assert outcome["thumbnail"].startswith("data:image/png;base64,") and outcome["size"] == [64, 64]
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    with app.app_context():
        provider = db.session.get(Provider, provider_id)
        assert provider.last_status == "ok" and provider.last_latency_ms is not None and provider.last_checked_at
        assert _count(CreditLedger) == 0 and p.jobs_count() == 0


def test_test_provider_shows_the_exact_error_for_the_config_on_screen(app, client):
    with RunPodServer(token="good") as server:
        server.mode = "error500"
        with app.app_context():
            provider_id = p.runpod_provider(server, retries=3).id
        _admin(app, client)
        data = form_values(client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True))
        outcome = client.post(f"/admin/providers/test?id={provider_id}", data=data).get_json()
        assert not outcome["ok"] and "answered 500" in outcome["error"]
        assert len(server.paths("POST")) == 1  # a test is one call: no retries
        # Unsaved edits are what gets tested: a wrong key typed on screen is used, not the stored one.
        server.mode = "ok"
        data["secret__api_key"] = "typed-but-wrong"
        outcome = client.post(f"/admin/providers/test?id={provider_id}", data=data).get_json()
        assert not outcome["ok"] and "401" in outcome["error"]
    with app.app_context():
        provider = db.session.get(Provider, provider_id)
        assert provider.last_status == "error" and "401" in provider.last_error
        assert decrypt_json(provider.secrets) == {"api_key": "good"}  # testing never saves
        assert _count(CreditLedger) == 0


def test_function_test_button_uses_the_function_config(app, client):
    with app.app_context():
        fn_id = p.local_function("upscale", operation="upscale").id
    _admin(app, client)
    data = form_values(client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True))
    data["provider_config"] = '{"operation": "upscale", "params": {"scale": 4}}'
    outcome = client.post("/admin/functions/test", data=data).get_json()
    assert outcome["ok"] and outcome["size"] == [256, 256]


@pytest.mark.parametrize("role", ["support", "viewer", "customer"])
def test_only_admins_may_test_or_import(app, client, role):
    with app.app_context():
        provider_id = p.add_provider("local", config={}).id
    _admin(app, client, role)
    assert post(client, f"/admin/providers/test?id={provider_id}", {"key": "local", "config": "{}"}).status_code == 403
    assert post(client, "/admin/functions/test", {"provider": provider_id}).status_code == 403
    assert client.get("/admin/functions/import").status_code == 403


# --- fallback chain ---


def test_fallback_takes_over_when_the_primary_keeps_failing(app):
    with ReplicateServer() as primary, RunPodServer() as backup, app.app_context():
        primary.mode = "error503"
        fn = p.add_function(p.replicate_provider(primary, retries=1), price_per_use=3)
        fallback = p.runpod_provider(backup)
        db.session.add(FunctionFallback(function_id=fn.id, position=1, provider_id=fallback.id,
                                        provider_config={"timeout": 10}))
        db.session.commit()
        user = p.funded_customer(10)
        job_id = jobs.submit(user, fn.key, image_bytes()).id
        p.drain(app)
        job = p.job(job_id)
        assert job.status == "done" and job.provider_key == "runpod" and job.provider_id == fallback.id
        assert len(primary.paths("POST")) == 2 and backup.paths("POST") == ["/v2/ep-test/run"]
        messages = [line.message for line in job.logs]
        assert any("Handing over to RunPod [runpod] after Replicate gave up" in m for m in messages)
        assert p.balance(user.id) == 7 == p.ledger_sum(user.id) and p.refunds(job_id) == 0


def test_function_stays_on_the_site_while_a_fallback_can_run_it(app, client):
    with app.app_context():
        fn = p.local_function()
        backup_id = p.add_provider("local", name="Backup", config={"timeout": 30, "retries": 0}).id
        db.session.add(FunctionFallback(function_id=fn.id, position=1, provider_id=backup_id,
                                        provider_config={"operation": "noop"}))
        db.session.get(Provider, fn.provider_id).enabled = False
        db.session.commit()
    assert client.get("/f/enhance").status_code == 200
    with app.app_context():
        db.session.get(Provider, backup_id).enabled = False
        db.session.commit()
    assert client.get("/f/enhance").status_code == 404


def test_fallbacks_are_edited_inline_and_validated(app, client):
    with app.app_context():
        fn = p.local_function()
        backup_id = p.add_provider("local", name="Backup", config={"timeout": 30}).id
        fn_id = fn.id
    _admin(app, client)
    data = form_values(client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True))
    data.update({"fallbacks-0-position": "1", "fallbacks-0-provider": str(backup_id),
                 "fallbacks-0-provider_config": '{"operation": "nonsense"}'})
    resp = client.post(f"/admin/functions/edit/?id={fn_id}", data=data)
    assert resp.status_code == 200 and "Fallback #1 (Backup)" in resp.get_data(as_text=True)
    data["fallbacks-0-provider_config"] = '{"operation": "denoise"}'
    assert client.post(f"/admin/functions/edit/?id={fn_id}", data=data).status_code == 302
    with app.app_context():
        (step,) = db.session.get(AIFunction, fn_id).fallbacks
        assert (step.provider_id, step.provider_config) == (backup_id, {"operation": "denoise"})


# --- the generic HTTP provider, configured through the admin only ---


def test_generic_http_provider_set_up_in_the_admin_completes_a_job(app, client):
    with CustomImageAPIServer(token="in-house-key") as server:
        _admin(app, client)
        jobs_url = f"{server.url}/api/v2/jobs"
        config = {
            "url": jobs_url, "headers": {"X-Api-Key": "{{secret.api_key}}"},
            "body": {"task": {"picture": "{{image_base64}}", "options": {"strength": "{{params.strength}}"}}},
            "params": {"strength": 0.5}, "poll_url": jobs_url + "/{{id}}", "id_pointer": "/job/uuid",
            "status_pointer": "/job/state", "success_states": ["FINISHED"], "failure_states": ["ERRORED"],
            "error_pointer": "/job/message", "output_pointer": "/job/result/files/0/href",
            "timeout": 10, "retries": 0, "poll_interval": 0.05, "allow_hosts": ["127.0.0.1"],
        }
        assert post(client, "/admin/providers/new/", {"name": "In-house GPU", "key": "http", "enabled": "y",
                                                      "config": json.dumps(config),
                                                      "secret__api_key": "in-house-key"}).status_code == 302
        with app.app_context():
            provider_id = db.session.scalars(sa.select(Provider.id)).one()
        resp = post(client, "/admin/functions/new/", {
            "key": "restore", "name": "Restore", "description": "", "enabled": "y", "provider": str(provider_id),
            "provider_config": "{}", "price_per_use": "2", "max_file_size": "10485760",
            "allowed_formats": ["PNG", "JPEG"], "priority": "0", "daily_limit": "",
        })
        assert resp.status_code == 302, resp.get_data(as_text=True)
        with app.app_context():
            user = p.funded_customer(5)
            job_id = jobs.submit(user, "restore", image_bytes()).id
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "done" and job.provider_key == "http"
        create = server.requests[0]
        assert create["path"] == "/api/v2/jobs" and create["headers"]["x-api-key"] == "in-house-key"
        assert create["json"]["task"]["options"] == {"strength": 0.5}


# --- export / import / clone ---


def test_export_import_and_clone_a_function(app, client):
    with app.app_context():
        fn = p.local_function("upscale", operation="upscale", price_per_use=4)
        backup = p.add_provider("local", name="Backup", config={"timeout": 30})
        db.session.add(FunctionFallback(function_id=fn.id, position=1, provider_id=backup.id, provider_config={}))
        db.session.commit()
        fn_id = fn.id
    _admin(app, client)
    exported = client.get(f"/admin/functions/export?id={fn_id}")
    assert "attachment" in exported.headers["Content-Disposition"]
    data = exported.get_json()
    assert data["provider"] == "Local upscale" and data["fallbacks"][0]["provider"] == "Backup"

    data.update(key="upscale-eu", price_per_use=6)
    resp = post(client, "/admin/functions/import", {"json": json.dumps(data)})
    assert resp.status_code == 302
    data["provider"] = "Nowhere"
    resp = post(client, "/admin/functions/import", {"json": json.dumps(data)})
    assert "No provider named &#39;Nowhere&#39;" in resp.get_data(as_text=True)

    assert post(client, "/admin/functions/action/", {"action": "clone", "rowid": [fn_id],
                                                     "url": "/admin/functions/"}).status_code == 302
    with app.app_context():
        imported = db.session.scalars(sa.select(AIFunction).where(AIFunction.key == "upscale-eu")).one()
        assert imported.price_per_use == 6 and [f.provider.name for f in imported.fallbacks] == ["Backup"]
        copy = db.session.scalars(sa.select(AIFunction).where(AIFunction.key == "upscale-copy")).one()
        assert not copy.enabled and copy.provider_config == {"operation": "upscale"} and len(copy.fallbacks) == 1
        assert {a.action for a in db.session.scalars(sa.select(AuditLog))} == {"import", "clone"}


# --- secrets never in clear ---


def test_secrets_never_appear_in_forms_audit_logs_or_exports(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    with ReplicateServer(token=TOKEN) as server:
        _admin(app, client)
        resp = post(client, "/admin/providers/new/", {
            "name": "Replicate", "key": "replicate", "enabled": "y", "secret__api_token": TOKEN,
            "config": json.dumps({"endpoint": f"{server.url}/v1", "model": "a/b", "poll_interval": 0.05,
                                  "allow_hosts": ["127.0.0.1"]})})
        assert resp.status_code == 302
        with app.app_context():
            provider = db.session.scalars(sa.select(Provider)).one()
            fn = p.add_function(provider)
            user = p.funded_customer(5)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            fn_id, provider_id = fn.id, provider.id
        p.drain(app)
        seen = [client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True),
                client.get(f"/admin/providers/details/?id={provider_id}").get_data(as_text=True),
                client.get("/admin/providers/").get_data(as_text=True),
                client.get(f"/admin/functions/export?id={fn_id}").get_data(as_text=True),
                client.get(f"/admin/jobs/details/?id={job_id}").get_data(as_text=True),
                client.get("/admin/audit/").get_data(as_text=True)]
    with app.app_context():
        assert p.job(job_id).status == "done"
        seen += [json.dumps([a.old_values, a.new_values]) for a in db.session.scalars(sa.select(AuditLog))]
        seen += [line.message for line in p.job(job_id).logs]
    seen += [r.getMessage() for r in caplog.records]
    assert "••••0042" in seen[0]
    assert not [text for text in seen if TOKEN in text]


def test_rotate_keys_keeps_every_secret_readable(app, monkeypatch):
    from cryptography.fernet import Fernet

    with app.app_context():
        provider_id = p.add_provider("replicate", config={"endpoint": "https://x"}, secrets={"api_token": TOKEN}).id
        old_token = db.session.get(Provider, provider_id).secrets
    new_key, old_key = Fernet.generate_key().decode(), app.config["ENCRYPTION_KEY"]
    monkeypatch.setitem(app.config, "ENCRYPTION_KEY", f"{new_key},{old_key}")
    result = app.test_cli_runner().invoke(args=["rotate-keys"])
    assert result.exit_code == 0 and "1 provider(s)" in result.output
    monkeypatch.setitem(app.config, "ENCRYPTION_KEY", new_key)  # the old key is gone now
    with app.app_context():
        provider = db.session.get(Provider, provider_id)
        assert provider.secrets != old_token and decrypt_json(provider.secrets) == {"api_token": TOKEN}
