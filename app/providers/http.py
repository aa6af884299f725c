"""Generic HTTP provider: any REST image API described in the admin by JSON config (request templates,
optional polling, JSON pointers to the id, status and output), so a new back end needs no code.
"""
import json
import re
import time
from urllib.parse import quote

from app.providers.base import (AIProvider, ProcessResult, ProviderError, call, config_schema, output_fields,
                                request_timeout, run_remote)
from app.providers.registry import register

PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
DEFAULT_BODY = {"image": "{{image_base64}}"}
SUCCESS_STATES = ["succeeded", "completed", "done"]
FAILURE_STATES = ["failed", "error", "canceled", "cancelled"]


def resolve_pointer(doc, pointer):
    """RFC 6901 lookup ("" is the whole document); None when the path does not exist."""
    if pointer and not pointer.startswith("/"):
        raise ProviderError(f"JSON pointer {pointer!r} must start with '/'.")
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")  # this order, so "~01" means "~1"
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list) and ARRAY_INDEX.fullmatch(token) and int(token) < len(doc):
            doc = doc[int(token)]
        else:
            return None
    return doc


class _Templates:
    """Fills {{...}} placeholders for one job, and remembers the secrets it used so errors can hide them."""

    def __init__(self, input, config):
        self.config = config
        uri = input.data_uri()
        self.values = {"image_base64": uri.partition(",")[2], "image_data_uri": uri, "content_type": input.content_type}
        self.secrets = set()

    def value(self, name):
        kind, _, key = name.partition(".")
        if name in self.values:
            return self.values[name]
        if kind == "params" and key:
            params = self.config.get("params") or {}
            if key not in params:
                raise ProviderError(f"The HTTP templates use param {key}, but params has no {key}.")
            return params[key]
        if kind == "secret" and key:
            if not self.config.get(key):
                raise ProviderError(f"The HTTP templates use secret {key}, but secret {key} is not set "
                                    "(Providers → Secrets).")
            self.secrets.add(str(self.config[key]))
            return self.config[key]
        raise ProviderError(f"Unknown placeholder {name!r} in the HTTP provider's templates.")

    def text(self, template, url=False):
        """A string template; substituted values are URL-encoded in URLs (ids and keys may hold / or +)."""
        def fill(match):
            value = self.value(match.group(1))
            value = value if isinstance(value, str) else json.dumps(value)
            return quote(value, safe="") if url else value
        return PLACEHOLDER.sub(fill, template)

    def render(self, template):
        """A JSON template: every string in it is filled; one that is exactly a placeholder takes the value
        as it is, so numbers, booleans and objects from params stay typed."""
        if isinstance(template, dict):
            return {k: self.render(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self.render(v) for v in template]
        if isinstance(template, str):
            whole = PLACEHOLDER.fullmatch(template)
            return self.value(whole.group(1)) if whole else self.text(template)
        return template

    def call(self, method, url, **kwargs):
        """base.call, but with every secret (a URL may carry one) masked in the error message."""
        try:
            return call(method, url, **kwargs)
        except ProviderError as exc:
            message = str(exc)
            for secret in self.secrets:
                message = message.replace(secret, "***").replace(quote(secret, safe=""), "***")
            raise ProviderError(message, retryable=exc.retryable) from None


@register("http")
class HTTPProvider(AIProvider):
    name = "Generic HTTP API"
    # The conventional secret; others are accepted too (the schema allows extra properties) and read the same way.
    secret_fields = ("api_key",)
    config_schema = config_schema({
        "url": {"type": "string", "description": "Request URL template, e.g. https://api.example.com/v1/jobs."},
        "method": {"type": "string", "enum": ["POST", "PUT", "GET"], "default": "POST",
                   "description": "Method of the first request; GET sends no body."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                    "description": 'Header templates, e.g. {"Authorization": "Bearer {{secret.api_key}}"}.'},
        "body": {"type": ["object", "array", "string"], "default": DEFAULT_BODY,
                 "description": "JSON template (a string is sent as is). Placeholders: {{image_base64}}, "
                                "{{image_data_uri}}, {{content_type}}, {{params.NAME}}, {{secret.NAME}}."},
        "output_pointer": {"type": "string", "description": "JSON pointer to the output in the final response "
                                                            "(http(s) URL, base64 or data URI), e.g. /result/image."},
        "poll_url": {"type": "string", "description": "Status URL template using {{id}}; without it the first "
                                                      "response is final."},
        "id_pointer": {"type": "string", "default": "/id",
                       "description": "JSON pointer to the job id in the first response."},
        "status_pointer": {"type": "string", "default": "/status",
                           "description": "JSON pointer to the job status in each response."},
        "success_states": {"type": "array", "items": {"type": "string"}, "default": SUCCESS_STATES,
                           "description": "Statuses that mean done (case-insensitive)."},
        "failure_states": {"type": "array", "items": {"type": "string"}, "default": FAILURE_STATES,
                           "description": "Statuses that mean failed (case-insensitive)."},
        "error_pointer": {"type": "string", "default": "/error",
                          "description": "JSON pointer to the error message of a failed job."},
        "cancel_url": {"type": "string", "description": "URL template using {{id}}, POSTed on timeout or cancel."},
        "poll_interval": {"type": "number", "minimum": 0.05, "default": 1.0,
                          "description": "Seconds between status requests."},
        "api_key": {"type": "string", "description": "API key, used in templates as {{secret.api_key}}."},
    }, required=["url", "output_pointer"])

    def process_image(self, input, config, *, should_cancel=lambda: False):
        started = time.time()
        templates = _Templates(input, config)
        timeout = request_timeout(config)
        method = config.get("method", "POST")
        headers = {k: templates.text(v) for k, v in (config.get("headers") or {}).items()}
        request = {"headers": headers, "timeout": timeout}
        if method != "GET":
            body = templates.render(config.get("body", DEFAULT_BODY))
            if isinstance(body, str):
                request["data"] = body.encode()  # as is: the Content-Type header is the config's to set
            else:
                request["json"] = body
        url = templates.text(config["url"], url=True)
        success = {s.lower() for s in config.get("success_states", SUCCESS_STATES)}
        failure = {s.lower() for s in config.get("failure_states", FAILURE_STATES)}

        def status(state):
            return str(resolve_pointer(state["response"], config.get("status_pointer", "/status")) or "")

        def link(key, job_id):
            templates.values["id"] = job_id
            return templates.text(config[key], url=True)

        def create():
            response = templates.call(method, url, **request)
            job_id = resolve_pointer(response, config.get("id_pointer", "/id"))
            if not isinstance(job_id, (str, int)) or job_id == "":
                raise ProviderError(f"The first response has no job id at {config.get('id_pointer', '/id')}.")
            return {"id": str(job_id), "response": response}

        def cancel(state):
            if config.get("cancel_url"):
                templates.call("POST", link("cancel_url", state["id"]), headers=headers, timeout=timeout)

        if config.get("poll_url"):
            # Fill the polling templates once before the job exists: a missing secret must not strand it.
            for key in ("poll_url", "cancel_url"):
                if config.get(key):
                    link(key, "")
            state = run_remote(
                config, create=create, cancel=cancel, is_done=lambda s: status(s).lower() in success | failure,
                fetch=lambda s: {**s, "response": templates.call("GET", link("poll_url", s["id"]), headers=headers,
                                                                 timeout=timeout)},
                should_cancel=should_cancel,
            )
        else:
            state = {"id": None, "response": templates.call(method, url, **request)}
        job_id, response = state["id"], state["response"]
        # A synchronous API may report failure in its single response too, so check both paths.
        if status(state).lower() in failure:
            error = resolve_pointer(response, config.get("error_pointer", "/error"))
            message = f"Remote job {job_id} {status(state)}" if job_id else f"Remote job {status(state)}"
            raise ProviderError(f"{message}: {error}" if error else message, provider_job_id=job_id)
        found = resolve_pointer(response, config["output_pointer"])
        if not isinstance(found, str) or not found:
            raise ProviderError(f"The response has no output at {config['output_pointer']}.", provider_job_id=job_id)
        return ProcessResult(**output_fields(found), provider_job_id=job_id, started_at=started,
                             finished_at=time.time())
