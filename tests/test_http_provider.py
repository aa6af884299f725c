"""The generic HTTP provider, configured from JSON alone, against CustomImageAPIServer over real HTTP."""
import io

import jsonschema
import pytest
import requests
from PIL import Image, ImageOps

from app.providers import ProviderError, ProviderInput, registry
from app.providers.http import resolve_pointer
from app.services import outputs
from tests.contract_servers import CustomImageAPIServer
from tests.images import image_bytes

SOURCE = ProviderInput(image_bytes(size=(24, 16)), "image/png")
KEY = "k+y/123"  # URL-unsafe on purpose: it must be encoded in URLs and masked in errors


def _assert_inverted(output):
    expected = ImageOps.invert(Image.open(io.BytesIO(SOURCE.data)).convert("RGB"))
    assert list(Image.open(io.BytesIO(output)).convert("RGB").getdata()) == list(expected.getdata())


def _jobs_config(server, **extra):
    """The polling API described the way an admin would, in JSON only."""
    jobs = f"{server.url}/api/v2/jobs"
    return {
        "url": jobs, "headers": {"X-Api-Key": "{{secret.api_key}}"},
        "body": {"task": {"picture": "{{image_base64}}",
                          "options": {"strength": "{{params.strength}}", "denoise": "{{params.denoise}}",
                                      "label": "{{content_type}} at {{params.strength}}"}}},
        "params": {"strength": 0.75, "denoise": True}, "api_key": KEY,
        "poll_url": jobs + "/{{id}}", "cancel_url": jobs + "/{{id}}/abort", "id_pointer": "/job/uuid",
        "status_pointer": "/job/state", "success_states": ["finished"], "failure_states": ["ERRORED", "ABORTED"],
        "error_pointer": "/job/message", "output_pointer": "/job/result/files/0/href",
        "timeout": 5, "poll_interval": 0.05, "allow_hosts": ["127.0.0.1"], **extra,
    }


@pytest.fixture(autouse=True)
def _app(ctx):
    """Outputs are verified against the runtime settings, which live in the database."""


def _process(config):
    return outputs.produce(registry.get("http"), SOURCE, config)


def test_schema_accepts_a_config_with_extra_secrets():
    plugin = registry.plugin_class("http")
    config = {**plugin.defaults(), **_jobs_config(CustomImageAPIServer()), "vendor_token": "merged secret"}
    jsonschema.validate(config, plugin.config_schema)
    assert plugin.defaults()["body"] == {"image": "{{image_base64}}"} and plugin.defaults()["method"] == "POST"
    assert all("description" in field for field in plugin.config_schema["properties"].values())


def test_polling_job_succeeds_with_typed_params_and_the_key_from_the_secret():
    with CustomImageAPIServer(token=KEY, polls_before_done=2) as server:
        result = _process(_jobs_config(server))
        _assert_inverted(result.output)
        assert result.content_type == "image/png" and result.provider_job_id in server.jobs
        create = server.requests[0]
        assert create["headers"]["x-api-key"] == KEY
        assert create["json"]["task"]["options"] == {"strength": 0.75, "denoise": True,
                                                     "label": "image/png at 0.75"}
        uuid = result.provider_job_id
        assert server.paths() == ["/api/v2/jobs"] + [f"/api/v2/jobs/{uuid}"] * 3 + [f"/files/{uuid}.png"]


def test_failure_state_raises_the_servers_message():
    with CustomImageAPIServer(token=KEY, mode="fail") as server:
        with pytest.raises(ProviderError, match="ERRORED.*model crashed") as caught:
            _process(_jobs_config(server))
        assert not caught.value.retryable and caught.value.provider_job_id in server.jobs


def test_hang_times_out_and_aborts_the_remote_job():
    with CustomImageAPIServer(token=KEY, mode="hang") as server:
        with pytest.raises(ProviderError, match="did not finish within") as caught:
            _process(_jobs_config(server, timeout=0.3))
        uuid = caught.value.provider_job_id
        assert server.paths("POST")[-1] == f"/api/v2/jobs/{uuid}/abort"
        assert server.jobs[uuid]["state"] == "canceled"


def test_missing_secret_fails_before_any_request():
    with CustomImageAPIServer(token=KEY) as server:
        config = _jobs_config(server)
        del config["api_key"]
        with pytest.raises(ProviderError, match="secret api_key is not set") as caught:
            _process(config)
        assert not caught.value.retryable
        # Only the status URL needs this one: still refused before the remote job exists.
        with pytest.raises(ProviderError, match="secret poll_token is not set"):
            _process(_jobs_config(server, poll_url=config["poll_url"] + "?t={{secret.poll_token}}"))
        assert server.requests == []


def test_http_errors_map_to_retryable_and_never_show_the_secret():
    with CustomImageAPIServer(token=KEY, mode="error500") as server:
        in_query = _jobs_config(server, url=f"{server.url}/api/v2/jobs?key={{{{secret.api_key}}}}")
        with pytest.raises(ProviderError, match=r"key=\*\*\* answered 500") as caught:
            _process(in_query)
        assert caught.value.retryable and "123" not in str(caught.value)
        assert server.requests[0]["path"].endswith("?key=k%2By%2F123")
        server.mode = "ok"
        with pytest.raises(ProviderError, match="answered 401") as caught:
            _process(_jobs_config(server, api_key="wrong"))
        assert not caught.value.retryable


@pytest.mark.parametrize("body", [{"task": {"picture": "{{image_data_uri}}"}},
                                  '{"task": {"picture": "{{image_base64}}"}}'])
def test_synchronous_api_without_polling(body):
    with CustomImageAPIServer(token=KEY) as server:
        config = {"url": f"{server.url}/api/v2/convert", "method": "POST", "body": body,
                  "headers": {"X-Api-Key": "{{secret.api_key}}", "Content-Type": "application/json"},
                  "api_key": KEY, "output_pointer": "/output/b64", "timeout": 5}
        result = _process(config)
        _assert_inverted(result.output)
        assert server.paths() == ["/api/v2/convert"] and result.provider_job_id is None
        server.mode = "fail"
        with pytest.raises(ProviderError, match="answered 422.*model crashed"):
            _process(config)


def test_server_contract_auth_and_abort():
    with CustomImageAPIServer(mode="hang") as server:
        task = {"task": {"picture": SOURCE.data_uri(), "options": {}}}
        assert requests.post(f"{server.url}/api/v2/jobs", json=task,
                             headers={"Authorization": "Bearer test-token"}).status_code == 401
        created = requests.post(f"{server.url}/api/v2/jobs", json=task, headers={"X-Api-Key": "test-token"})
        job = created.json()["job"]
        assert created.status_code == 202 and job["state"] == "PENDING"
        aborted = requests.post(f"{server.url}/api/v2/jobs/{job['uuid']}/abort", headers={"X-Api-Key": "test-token"})
        assert aborted.json() == {"job": {"uuid": job["uuid"], "state": "ABORTED"}}


def test_json_pointer_escapes_and_indices():
    doc = {"a/b": {"m~n": [10, {"": "empty key"}]}, "01": "literal"}
    assert resolve_pointer(doc, "/a~1b/m~0n/1/") == "empty key"
    assert resolve_pointer(doc, "/a~1b/m~0n/0") == 10 and resolve_pointer(doc, "") is doc
    assert resolve_pointer(doc, "/a~1b/m~0n/01") is None and resolve_pointer(doc, "/01") == "literal"
    assert resolve_pointer(doc, "/a~1b/m~0n/2") is None
