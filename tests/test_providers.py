"""Provider plugins: the registry, config validation, and each back end against its contract."""
import io

import pytest
from PIL import Image, ImageStat

from app.extensions import db
from app.providers import ProviderError, ProviderInput, registry
from app.services import jobs, outputs, provider_setup
from tests import pipeline as p
from tests.contract_servers import ReplicateServer, RunPodServer
from tests.images import image_bytes

SOURCE = ProviderInput(image_bytes(size=(48, 32)), "image/png")


def _image(result):
    return Image.open(io.BytesIO(result.output))


def test_registry_names_the_known_keys_for_an_unknown_one():
    assert {"local", "replicate", "runpod"} <= set(registry.available())
    with pytest.raises(registry.UnknownProvider, match="known keys: .*local.*replicate.*runpod"):
        registry.get("stability")


def test_every_plugin_declares_a_schema_with_its_secrets():
    for key in registry.available():
        plugin = registry.plugin_class(key)
        properties = plugin.config_schema["properties"]
        assert {"timeout", "retries", "params"} <= set(properties)
        assert set(plugin.secret_fields) <= set(properties)


@pytest.mark.parametrize("operation,size", [("enhance", (48, 32)), ("upscale", (96, 64)), ("hdr", (48, 32)),
                                            ("denoise", (48, 32)), ("noop", (48, 32))])
def test_local_operations_really_process_the_image(operation, size):
    result = registry.get("local").process_image(SOURCE, {"operation": operation, "params": {}})
    out = _image(result)
    assert out.size == size and result.content_type == "image/png"
    if operation in ("enhance", "hdr"):
        before = ImageStat.Stat(Image.open(io.BytesIO(SOURCE.data)).convert("RGB")).mean
        assert ImageStat.Stat(out.convert("RGB")).mean != before


def test_local_upscale_by_four_and_jpeg_output():
    result = registry.get("local").process_image(
        SOURCE, {"operation": "upscale", "params": {"scale": 4}, "output_format": "JPEG"})
    assert _image(result).size == (192, 128) and result.content_type == "image/jpeg"


def test_replicate_by_version_and_missing_token(ctx):
    with ReplicateServer(token="tok") as server:
        config = {"endpoint": f"{server.url}/v1", "version": "abc123", "api_token": "tok", "timeout": 5,
                  "poll_interval": 0.05, "params": {"scale": 2}, "allow_hosts": ["127.0.0.1"]}
        result = outputs.produce(registry.get("replicate"), SOURCE, config)
        create = server.requests[0]
        assert create["path"] == "/v1/predictions" and create["json"]["version"] == "abc123"
        assert create["json"]["input"]["scale"] == 2
        assert result.provider_job_id and _image(result).size == (48, 32)
        with pytest.raises(ProviderError, match="No API token"):
            registry.get("replicate").process_image(SOURCE, {**config, "api_token": ""})


def test_runpod_url_output_and_bad_token_is_not_retryable(ctx):
    with RunPodServer(token="key", output_style="url") as server:
        config = {"endpoint": f"{server.url}/v2/ep1", "api_key": "key", "timeout": 5, "poll_interval": 0.05,
                  "allow_hosts": ["127.0.0.1"]}
        result = outputs.produce(registry.get("runpod"), SOURCE, config)
        assert _image(result).size == (48, 32)
        assert server.requests[0]["json"]["policy"]["executionTimeout"] == 5001
        with pytest.raises(ProviderError) as exc:
            registry.get("runpod").process_image(SOURCE, {**config, "api_key": "wrong"})
        assert "401" in str(exc.value) and not exc.value.retryable


def test_invalid_stored_config_fails_the_job_with_the_field_named(app):
    with app.app_context():
        provider = p.add_provider("local", config={"timeout": 30, "retries": 0})
        fn = p.add_function(provider, provider_config={"operation": "sharpen-everything"})
        with pytest.raises(ProviderError, match="operation"):
            provider_setup.effective_config(provider, fn.provider_config)
        user = p.funded_customer(5)
        with pytest.raises(jobs.SubmitError, match="temporarily unavailable") as exc:
            jobs.submit(user, fn.key, image_bytes())
        assert exc.value.status == 503 and p.balance(user.id) == 5 and p.jobs_count() == 0


def test_function_config_overrides_provider_and_params_merge(app):
    with app.app_context():
        provider = p.add_provider("local", config={"timeout": 30, "retries": 3, "params": {"scale": 4, "a": 1}})
        fn = p.add_function(provider, provider_config={"operation": "upscale", "retries": 0, "params": {"scale": 2}})
        config = provider_setup.effective_config(provider, fn.provider_config)
        assert config["retries"] == 0 and config["timeout"] == 30 and config["output_format"] == "PNG"
        assert config["params"] == {"scale": 2, "a": 1}


@pytest.mark.parametrize("method,args", [
    ("submit", (SOURCE, {})), ("check", ({"id": "r-1"}, {})), ("outcome", ({"id": "r-1"}, {})),
    ("cancel_remote", ({"id": "r-1"}, {})), ("fetch_webhook_secret", ({},)),
])
def test_a_plugin_asked_for_remote_work_it_does_not_do_fails_plainly(method, args):
    with pytest.raises(ProviderError, match=r"^The Local \(Pillow\) provider cannot ") as caught:
        getattr(registry.get("local"), method)(*args)
    assert caught.value.retryable is False  # asking again cannot help


def test_a_one_call_plugin_without_process_image_fails_plainly():
    # The Generic HTTP plugin answers in one call unless a status URL makes it remote; the base class's
    # process_image is what a plugin without its own gets.
    from app.providers.base import AIProvider

    with pytest.raises(ProviderError, match="cannot answer in one call") as caught:
        AIProvider.process_image(registry.get("http"), SOURCE, {})
    assert caught.value.retryable is False


def test_a_waiting_job_whose_function_moved_to_a_local_plugin_fails_plainly_and_is_refunded(app):
    with ReplicateServer(mode="hang") as server:
        with app.app_context():
            fn = p.add_function(p.replicate_provider(server, timeout=60), price_per_use=2)
            local = p.add_provider("local", name="Local", config={"timeout": 30, "retries": 0})
            user = p.funded_customer(10)
            job_id = jobs.submit(user, fn.key, image_bytes()).id
            jobs.run(job_id)
            assert p.job(job_id).status == "waiting"
            # The owner switches the function while the job waits at Replicate: its next check asks Local.
            fn.provider_id = local.id
            db.session.commit()
        p.drain(app)
        with app.app_context():
            job = p.job(job_id)
            assert job.status == "failed"
            assert job.error == "Local: The Local (Pillow) provider cannot check remote jobs."
            assert "unexpectedly" not in job.error
            assert p.refunds(job_id) == 1 and p.balance(user.id) == 10 == p.ledger_sum(user.id)
