"""Replicate provider: create a prediction (with a webhook when we have a public URL), check urls.get, cancel,
and verify Replicate's signed webhooks (Standard Webhooks). Contract: https://replicate.com/docs.
"""
import base64
import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit

from app.providers.base import (AIProvider, ProcessResult, ProviderError, WebhookRefused, auth_headers, call,
                                config_schema, image_input, output_fields, remote_fields, request_timeout)
from app.providers.registry import register

TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
# Webhooks whose timestamp is further than this from our clock are refused (replays).
WEBHOOK_TOLERANCE_SECONDS = 300


def _origin(url):
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


@register("replicate")
class ReplicateProvider(AIProvider):
    name = "Replicate"
    remote = True
    secret_fields = ("api_token", "webhook_secret")
    webhook_secret_field = "webhook_secret"
    config_schema = config_schema({
        "endpoint": {"type": "string", "format": "uri", "default": "https://api.replicate.com/v1",
                     "description": "API base URL."},
        "model": {"type": "string", "description": "owner/name: runs the model's latest version."},
        "version": {"type": "string", "description": "A version id (or owner/name:version); wins over model."},
        "input_key": {"type": "string", "default": "image", "description": "Input field that receives the image."},
        **remote_fields(),
        "api_token": {"type": "string", "description": "Replicate API token."},
        "webhook_secret": {"type": "string", "description": "Key that signs Replicate's webhooks (whsec_…); "
                                                            "fetched from Replicate when empty."},
    }, required=["endpoint"])

    def _base(self, config):
        return config["endpoint"].rstrip("/")

    def _link(self, state, name, fallback, config):
        # The token goes with this request: follow the prediction's URL only on the configured API host.
        base = self._base(config)
        named = (state.get("urls") or {}).get(name)
        if isinstance(named, str) and _origin(named) == _origin(base):
            return named
        return f"{base}/predictions/{quote(str(state['id']), safe='')}{fallback}"

    def _call(self, method, url, config, **kwargs):
        return call(method, url, headers=auth_headers(config.get("api_token")), timeout=request_timeout(config),
                    **kwargs)

    def submit(self, input, config, webhook_url=None):
        base = self._base(config)
        body = {"input": image_input(input, config)}
        if config.get("version"):
            url = f"{base}/predictions"
            body["version"] = config["version"]
        elif config.get("model"):
            url = f"{base}/models/{config['model']}/predictions"
        else:
            raise ProviderError("Set either model (owner/name) or version in the Replicate config.")
        if webhook_url:
            body.update(webhook=webhook_url, webhook_events_filter=["completed"])
        return self._state(self._call("POST", url, config, json=body))

    def _state(self, prediction):
        # Only what later calls need: the input echo and logs can be large.
        return {k: prediction.get(k) for k in ("id", "status", "output", "error", "urls", "metrics")}

    def check(self, state, config):
        return self._state(self._call("GET", self._link(state, "get", "", config), config))

    def cancel_remote(self, state, config):
        self._call("POST", self._link(state, "cancel", "/cancel", config), config)

    def outcome(self, state, config):
        status, pid = state.get("status"), state.get("id")
        if status not in TERMINAL:
            return None
        if status != "succeeded":
            raise ProviderError(f"Replicate prediction {pid} {status}: {state.get('error') or ''}".strip(),
                                provider_job_id=pid)
        output = state.get("output")
        if isinstance(output, list):
            output = output[-1] if output else None
        if not isinstance(output, str):
            raise ProviderError(f"Replicate prediction {pid} succeeded without a file output.", provider_job_id=pid)
        return ProcessResult(**output_fields(output), provider_job_id=pid, finished_at=time.time(),
                             metadata={"metrics": state.get("metrics") or {}})

    def fetch_webhook_secret(self, config):
        secret = self._call("GET", f"{self._base(config)}/webhooks/default/secret", config).get("key")
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            raise ProviderError("Replicate did not return a webhook signing secret.")
        return secret

    def verify_webhook(self, headers, body, config):
        """Standard Webhooks: HMAC-SHA256 over "{id}.{timestamp}.{body}" with the base64 part of whsec_…"""
        secret = config.get("webhook_secret") or ""
        webhook_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not secret.startswith("whsec_"):
            raise WebhookRefused("no webhook signing secret is stored for this provider")
        if not (webhook_id and stamp.isdigit() and signatures):
            raise WebhookRefused("webhook-id, webhook-timestamp or webhook-signature is missing")
        if abs(time.time() - int(stamp)) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRefused("the webhook timestamp is too far from now")
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256)
                                    .digest()).decode()
        for entry in signatures.split():
            version, _, signature = entry.partition(",")
            if version == "v1" and hmac.compare_digest(signature, expected):
                return
        raise WebhookRefused("the webhook signature does not match")
