"""Replicate provider: create a prediction, poll urls.get to a terminal status, copy the output.

Contract: https://replicate.com/docs (create / get / cancel prediction).
"""
import time
from urllib.parse import quote, urlsplit

from app.providers.base import (AIProvider, ProcessResult, ProviderError, auth_headers, call, config_schema,
                                image_input, output_fields, request_timeout, run_remote)
from app.providers.registry import register

TERMINAL = {"succeeded", "failed", "canceled", "aborted"}


@register("replicate")
class ReplicateProvider(AIProvider):
    name = "Replicate"
    secret_fields = ("api_token",)
    config_schema = config_schema({
        "endpoint": {"type": "string", "format": "uri", "default": "https://api.replicate.com/v1",
                     "description": "API base URL."},
        "model": {"type": "string", "description": "owner/name: runs the model's latest version."},
        "version": {"type": "string", "description": "A version id (or owner/name:version); wins over model."},
        "input_key": {"type": "string", "default": "image", "description": "Input field that receives the image."},
        "poll_interval": {"type": "number", "minimum": 0.05, "default": 1.0,
                          "description": "Seconds between status checks."},
        "api_token": {"type": "string", "description": "Replicate API token."},
    }, required=["endpoint"])

    def process_image(self, input, config, *, should_cancel=lambda: False):
        started = time.time()
        base = config["endpoint"].rstrip("/")
        headers = auth_headers(config.get("api_token"))
        timeout = request_timeout(config)
        body = {"input": image_input(input, config)}
        if config.get("version"):
            url = f"{base}/predictions"
            body["version"] = config["version"]
        elif config.get("model"):
            url = f"{base}/models/{config['model']}/predictions"
        else:
            raise ProviderError("Set either model (owner/name) or version in the Replicate config.")

        def origin(url):
            parts = urlsplit(url)
            return parts.scheme, parts.hostname, parts.port

        def link(prediction, name, fallback):
            # The token goes with this request: follow the response's URL only on the configured API host.
            named = (prediction.get("urls") or {}).get(name)
            if isinstance(named, str) and origin(named) == origin(base):
                return named
            return f"{base}/predictions/{quote(str(prediction['id']), safe='')}{fallback}"

        prediction = run_remote(
            config,
            create=lambda: call("POST", url, json=body, headers=headers, timeout=timeout),
            fetch=lambda p: call("GET", link(p, "get", ""), headers=headers, timeout=timeout),
            cancel=lambda p: call("POST", link(p, "cancel", "/cancel"), headers=headers, timeout=timeout),
            is_done=lambda p: p.get("status") in TERMINAL, should_cancel=should_cancel,
        )
        pid = prediction.get("id")
        if prediction["status"] != "succeeded":
            raise ProviderError(f"Replicate prediction {pid} {prediction['status']}: {prediction.get('error') or ''}".strip(),
                                provider_job_id=pid)
        output = prediction.get("output")
        if isinstance(output, list):
            output = output[-1] if output else None
        if not isinstance(output, str):
            raise ProviderError(f"Replicate prediction {pid} succeeded without a file output.", provider_job_id=pid)
        return ProcessResult(**output_fields(output), provider_job_id=pid, started_at=started,
                             finished_at=time.time(), metadata={"metrics": prediction.get("metrics") or {}})
