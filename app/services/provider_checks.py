"""Checking a provider by hand: one real call with a built-in test image, and its recorded health.

Used by the admin's "Test provider" buttons; no job is created and no credits move.
"""
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import current_app
from PIL import Image

from app.extensions import db
from app.models.types import utcnow
from app.providers import registry
from app.providers.base import ProviderError, ProviderInput
from app.services import outputs, provider_setup

# A test call never waits longer than this, whatever the config says.
TEST_TIMEOUT_SECONDS = 60
# Threads, not the request thread: a provider that ignores its own timeout cannot hang the admin.
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="provider-test")


def test_image():
    """A small gradient PNG: cheap for any back end, and every operation visibly changes it."""
    img = Image.new("RGB", (64, 64))
    img.putdata([(x * 4, y * 4, 128) for y in range(64) for x in range(64)])
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _thumbnail(data):
    with Image.open(io.BytesIO(data)) as img:
        img.thumbnail((256, 256))
        buffer = io.BytesIO()
        img.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def run_test(provider, overrides=None, secrets=None):
    """Call `provider` once with the config on screen (unsaved edits included). Returns a result dict:
    ok, latency_ms, provider_job_id, thumbnail (data URI), size, error."""
    started = time.monotonic()
    try:
        config = provider_setup.effective_config(provider, overrides, secrets)
        config["timeout"] = min(float(config.get("timeout", TEST_TIMEOUT_SECONDS)), TEST_TIMEOUT_SECONDS)
        plugin = registry.get(provider.key)
        future = _pool.submit(_produce, current_app._get_current_object(), plugin,
                              ProviderInput(test_image(), "image/png", "test.png"), config)
        result = future.result(timeout=config["timeout"] + 5)
        thumbnail = _thumbnail(result.output)
    except FutureTimeout:
        return _outcome(started, error=f"No answer within {config['timeout'] + 5:.0f} s.")
    except (ProviderError, registry.UnknownProvider) as exc:
        return _outcome(started, error=str(exc))
    except (OSError, ValueError) as exc:
        return _outcome(started, error=f"The provider answered, but not with an image: {exc}")
    return _outcome(started, provider_job_id=result.provider_job_id, thumbnail=thumbnail,
                    size=result.metadata["size"])


def _produce(app, plugin, source, config):
    # In the pool's thread: the output checks read settings, which need the app.
    with app.app_context():
        return outputs.produce(plugin, source, config)


def _outcome(started, error=None, **fields):
    return {"ok": error is None, "latency_ms": int((time.monotonic() - started) * 1000), "error": error,
            "provider_job_id": None, "thumbnail": None, "size": None, **fields}


def record_health(provider, outcome):
    """Keep the last check on the provider row, shown in the providers list."""
    provider.last_checked_at = utcnow()
    provider.last_status = "ok" if outcome["ok"] else "error"
    provider.last_latency_ms = outcome["latency_ms"]
    provider.last_error = outcome["error"]
    db.session.commit()
