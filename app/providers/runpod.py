"""RunPod serverless provider: POST {endpoint}/run (with a webhook URL when we have a public URL), check
/status/{id}, cancel; output as URL or base64.

Contract: docs.runpod.io, serverless endpoint operations (run / status / cancel).
"""
import time
from urllib.parse import quote

from app.providers.base import (AIProvider, ProcessResult, ProviderError, auth_headers, call, config_schema,
                                image_input, output_fields, remote_fields, request_timeout)
from app.providers.registry import register

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def _find_output(output, key):
    """The image in a worker's output: the configured key, else the first string that looks like one."""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        for candidate in (key, "image", "image_url", "output", "url"):
            if isinstance(output.get(candidate), str):
                return output[candidate]
    if isinstance(output, list) and output:
        return _find_output(output[0], key)
    return None


@register("runpod")
class RunPodProvider(AIProvider):
    name = "RunPod serverless"
    remote = True
    secret_fields = ("api_key",)
    config_schema = config_schema({
        "endpoint": {"type": "string", "format": "uri",
                     "description": "https://api.runpod.ai/v2/<endpoint id>"},
        "input_key": {"type": "string", "default": "image", "description": "Input field that receives the image."},
        "output_key": {"type": "string", "default": "image",
                       "description": "Output field holding the result (URL or base64)."},
        **remote_fields(),
        "api_key": {"type": "string", "description": "RunPod API key."},
    }, required=["endpoint"])

    def _call(self, method, path, config, **kwargs):
        return call(method, config["endpoint"].rstrip("/") + path, headers=auth_headers(config.get("api_key")),
                    timeout=request_timeout(config), **kwargs)

    def submit(self, input, config, webhook_url=None):
        body = {
            "input": image_input(input, config),
            # RunPod's own limit, so an abandoned job does not bill forever (milliseconds, > 5000).
            "policy": {"executionTimeout": max(int(float(config.get("timeout", 300)) * 1000), 5001)},
        }
        if webhook_url:
            body["webhook"] = webhook_url  # RunPod does not sign: the URL carries the job's unguessable token
        return self._state(self._call("POST", "/run", config, json=body))

    def _state(self, job):
        return {k: job.get(k) for k in ("id", "status", "output", "error", "delayTime", "executionTime")}

    def check(self, state, config):
        return self._state(self._call("GET", f"/status/{quote(str(state['id']), safe='')}", config))

    def cancel_remote(self, state, config):
        self._call("POST", f"/cancel/{quote(str(state['id']), safe='')}", config)

    def outcome(self, state, config):
        jid, status = state.get("id"), state.get("status")
        if status not in TERMINAL:
            return None
        if status != "COMPLETED":
            raise ProviderError(f"RunPod job {jid} {status}: {state.get('error') or ''}".strip(), provider_job_id=jid)
        found = _find_output(state.get("output"), config.get("output_key", "image"))
        if not found:
            raise ProviderError(f"RunPod job {jid} completed without an image in its output.", provider_job_id=jid)
        return ProcessResult(**output_fields(found), provider_job_id=jid, finished_at=time.time(),
                             metadata={"delayTime": state.get("delayTime"),
                                       "executionTime": state.get("executionTime")})
