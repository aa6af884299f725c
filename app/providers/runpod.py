"""RunPod serverless provider: POST {endpoint}/run, poll /status/{id}, output as URL or base64.

Contract: docs.runpod.io, serverless endpoint operations (run / status / cancel).
"""
import time

from app.providers.base import (AIProvider, ProcessResult, ProviderError, auth_headers, call, config_schema,
                                image_input, output_fields, request_timeout, run_remote)
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
    secret_fields = ("api_key",)
    config_schema = config_schema({
        "endpoint": {"type": "string", "format": "uri",
                     "description": "https://api.runpod.ai/v2/<endpoint id>"},
        "input_key": {"type": "string", "default": "image", "description": "Input field that receives the image."},
        "output_key": {"type": "string", "default": "image",
                       "description": "Output field holding the result (URL or base64)."},
        "poll_interval": {"type": "number", "minimum": 0.05, "default": 1.0,
                          "description": "Seconds between status checks."},
        "api_key": {"type": "string", "description": "RunPod API key."},
    }, required=["endpoint"])

    def process_image(self, input, config, *, should_cancel=lambda: False):
        started = time.time()
        base = config["endpoint"].rstrip("/")
        headers = auth_headers(config.get("api_key"))
        timeout = request_timeout(config)
        body = {
            "input": image_input(input, config),
            # RunPod's own limit, so an abandoned job does not bill forever (milliseconds, > 5000).
            "policy": {"executionTimeout": max(int(float(config.get("timeout", 300)) * 1000), 5001)},
        }
        job = run_remote(
            config,
            create=lambda: call("POST", f"{base}/run", json=body, headers=headers, timeout=timeout),
            fetch=lambda j: call("GET", f"{base}/status/{j['id']}", headers=headers, timeout=timeout),
            cancel=lambda j: call("POST", f"{base}/cancel/{j['id']}", headers=headers, timeout=timeout),
            is_done=lambda j: j.get("status") in TERMINAL, should_cancel=should_cancel,
        )
        jid = job.get("id")
        if job["status"] != "COMPLETED":
            raise ProviderError(f"RunPod job {jid} {job['status']}: {job.get('error') or ''}".strip(),
                                provider_job_id=jid)
        found = _find_output(job.get("output"), config.get("output_key", "image"))
        if not found:
            raise ProviderError(f"RunPod job {jid} completed without an image in its output.", provider_job_id=jid)
        return ProcessResult(**output_fields(found), provider_job_id=jid, started_at=started,
                             finished_at=time.time(),
                             metadata={"delayTime": job.get("delayTime"), "executionTime": job.get("executionTime")})
