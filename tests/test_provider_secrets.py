"""Provider secrets stay with the plugin they were entered for, and never sit in clear in config JSON."""
import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AIFunction, AuditLog, Provider
from app.services.crypto import decrypt_json
from tests import pipeline as p
from tests.contract_servers import CustomImageAPIServer
from tests.helpers import form_values, login, make_user, post

TOKEN = "r8_saved_replicate_token_7731"


def _admin(app, client):
    with app.app_context():
        login(client, make_user("admin"))


def _saved_replicate(app):
    with app.app_context():
        return p.add_provider("replicate", name="Replicate", config={"endpoint": "https://api.replicate.com/v1",
                                                                    "model": "acme/restore"},
                              secrets={"api_token": TOKEN}).id


def _as_http(server, **extra):
    """A config for the http plugin that would send whatever {{secret.api_token}} holds to `server`."""
    return {"url": f"{server.url}/api/v2/convert", "output_pointer": "/output/b64", "timeout": 5,
            "headers": {"X-Api-Key": "{{secret.api_token}}"},
            "body": {"task": {"picture": "{{image_base64}}", "note": "{{secret.api_token}}"}}, **extra}


def test_test_provider_after_a_plugin_switch_sends_no_stored_secret(app, client):
    provider_id = _saved_replicate(app)
    _admin(app, client)
    with CustomImageAPIServer(token="whatever") as collector:
        data = form_values(client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True))
        data["key"], data["config"] = "http", json.dumps(_as_http(collector))
        outcome = client.post(f"/admin/providers/test?id={provider_id}", data=data).get_json()
        assert not outcome["ok"] and "secret api_token is not set" in outcome["error"]
        # A config that does not ask for the secret reaches the host, and nothing of the token goes with it.
        data["config"] = json.dumps(_as_http(collector, headers={"X-Trace": "1"},
                                             body={"task": {"picture": "{{image_base64}}"}}))
        outcome = client.post(f"/admin/providers/test?id={provider_id}", data=data).get_json()
        assert not outcome["ok"] and "401" in outcome["error"]
        assert len(collector.requests) == 1
        assert TOKEN not in json.dumps(collector.requests)
    with app.app_context():
        provider = db.session.get(Provider, provider_id)
        assert provider.key == "replicate" and decrypt_json(provider.secrets) == {"api_token": TOKEN}


def test_saving_a_provider_under_another_plugin_drops_its_stored_secrets(app, client):
    provider_id = _saved_replicate(app)
    _admin(app, client)
    with CustomImageAPIServer(token="whatever") as collector:
        data = form_values(client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True))
        data["key"], data["config"] = "http", json.dumps(_as_http(collector, retries=0))
        assert client.post(f"/admin/providers/edit/?id={provider_id}", data=data).status_code == 302
        with app.app_context():
            provider = db.session.get(Provider, provider_id)
            assert provider.key == "http" and provider.secrets is None
        # A secret typed in the same save is for the new plugin, and is kept.
        data = form_values(client.get(f"/admin/providers/edit/?id={provider_id}").get_data(as_text=True))
        data["key"], data["config"] = "runpod", '{"endpoint": "https://api.runpod.ai/v2/x"}'
        data["secret__api_key"] = "rp-new-key"
        assert client.post(f"/admin/providers/edit/?id={provider_id}", data=data).status_code == 302
        assert collector.requests == []
    with app.app_context():
        assert decrypt_json(db.session.get(Provider, provider_id).secrets) == {"api_key": "rp-new-key"}


@pytest.mark.parametrize("plugin,config,field", [
    ("replicate", {"endpoint": "https://api.replicate.com/v1", "model": "a/b", "api_token": "r8_typed_here"},
     "api_token"),
    ("http", {"url": "https://x.example/run", "output_pointer": "/out",
              "headers": {"Authorization": "Bearer sk-live-0123456789"}}, "headers/Authorization"),
    ("http", {"url": "https://x.example/run", "output_pointer": "/out", "headers": {"X-Api-Key": "abc123"}},
     "headers/X-Api-Key"),
    ("http", {"url": "https://x.example/run", "output_pointer": "/out",
              "params": {"vendor": {"auth": [{"clientSecret": "shh"}]}}}, "params/vendor/auth/0/clientSecret"),
    ("runpod", {"endpoint": "https://api.runpod.ai/v2/x", "params": {"hf_token": "hf_abc"}}, "params/hf_token"),
])
def test_provider_config_holding_a_credential_is_refused(app, client, plugin, config, field):
    _admin(app, client)
    resp = post(client, "/admin/providers/new/", {"name": "Leaky", "key": plugin, "config": json.dumps(config)})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and f"{field}: looks like a credential" in html
    assert "the secret inputs below" in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Provider)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)) == 0


def test_secret_references_are_welcome_in_config(app, client):
    _admin(app, client)
    config = {"url": "https://x.example/run", "output_pointer": "/out",
              "headers": {"Authorization": "Bearer {{secret.api_key}}"}, "params": {"max_tokens": 5}}
    resp = post(client, "/admin/providers/new/", {"name": "Fine", "key": "http", "config": json.dumps(config),
                                                  "secret__api_key": "kept-encrypted"})
    assert resp.status_code == 302, resp.get_data(as_text=True)


def test_function_config_and_imports_holding_a_credential_are_refused(app, client):
    with app.app_context():
        fn = p.local_function()
        fn_id, before = fn.id, dict(fn.provider_config)
    _admin(app, client)
    data = form_values(client.get(f"/admin/functions/edit/?id={fn_id}").get_data(as_text=True))
    data["provider_config"] = '{"operation": "enhance", "params": {"apiKey": "typed-in-clear"}}'
    html = client.post(f"/admin/functions/edit/?id={fn_id}", data=data).get_data(as_text=True)
    assert "params/apiKey: looks like a credential" in html and "secret inputs" in html
    outcome = client.post("/admin/functions/test", data=data).get_json()
    assert not outcome["ok"] and "looks like a credential" in outcome["error"]

    exported = client.get(f"/admin/functions/export?id={fn_id}").get_json()
    exported.update(key="imported", provider_config={"operation": "enhance", "password": "hunter22"})
    html = post(client, "/admin/functions/import", {"json": json.dumps(exported)}).get_data(as_text=True)
    assert "password: looks like a credential" in html
    with app.app_context():
        assert db.session.get(AIFunction, fn_id).provider_config == before
        assert db.session.scalars(sa.select(AIFunction.key)).all() == ["enhance"]
