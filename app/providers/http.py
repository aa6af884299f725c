"""Generic HTTP provider: any REST image API described in the admin by JSON config (request templates,
optional polling, JSON pointers to the id, status and output), so a new back end needs no code.
"""
import json
import re
import time
from urllib.parse import quote

from app.providers.base import (AIProvider, ProcessResult, ProviderError, call, config_schema, output_fields,
                                remote_fields, request_timeout)
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
        self.values = {}
        if input is not None:  # status and cancel requests of a remote job have no image
            uri = input.data_uri()
            self.values = {"image_base64": uri.partition(",")[2], "image_data_uri": uri,
                           "content_type": input.content_type}
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
        **remote_fields(),
        "api_key": {"type": "string", "description": "API key, used in templates as {{secret.api_key}}."},
    }, required=["url", "output_pointer"])

    def is_remote(self, config):
        return bool(config.get("poll_url"))

    def _request(self, templates, config, with_body):
        headers = {k: templates.text(v) for k, v in (config.get("headers") or {}).items()}
        request = {"headers": headers, "timeout": request_timeout(config)}
        if with_body and config.get("method", "POST") != "GET":
            body = templates.render(config.get("body", DEFAULT_BODY))
            if isinstance(body, str):
                request["data"] = body.encode()  # as is: the Content-Type header is the config's to set
            else:
                request["json"] = body
        return request

    def _status(self, response, config):
        return str(resolve_pointer(response, config.get("status_pointer", "/status")) or "")

    def _result(self, job_id, response, config):
        """The output of a final response; ProviderError when it reports failure or names no output."""
        status = self._status(response, config)
        # A synchronous API may report failure in its single response too, so both paths check.
        if status.lower() in {s.lower() for s in config.get("failure_states", FAILURE_STATES)}:
            error = resolve_pointer(response, config.get("error_pointer", "/error"))
            message = f"Remote job {job_id} {status}" if job_id else f"Remote job {status}"
            raise ProviderError(f"{message}: {error}" if error else message, provider_job_id=job_id)
        found = resolve_pointer(response, config["output_pointer"])
        if not isinstance(found, str) or not found:
            raise ProviderError(f"The response has no output at {config['output_pointer']}.", provider_job_id=job_id)
        return ProcessResult(**output_fields(found), provider_job_id=job_id, finished_at=time.time())

    def process_image(self, input, config, *, should_cancel=lambda: False):
        if self.is_remote(config):
            return super().process_image(input, config, should_cancel=should_cancel)
        started = time.time()
        templates = _Templates(input, config)
        request = self._request(templates, config, with_body=True)
        response = templates.call(config.get("method", "POST"), templates.text(config["url"], url=True), **request)
        result = self._result(None, response, config)
        result.started_at = started
        return result

    def submit(self, input, config, webhook_url=None):
        templates = _Templates(input, config)
        # Fill the status and cancel templates before the job exists: a missing secret must not strand it.
        for key in ("poll_url", "cancel_url"):
            if config.get(key):
                _link(templates, config, key, "")
        request = self._request(templates, config, with_body=True)
        response = templates.call(config.get("method", "POST"), templates.text(config["url"], url=True), **request)
        job_id = resolve_pointer(response, config.get("id_pointer", "/id"))
        if not isinstance(job_id, (str, int)) or job_id == "":
            raise ProviderError(f"The first response has no job id at {config.get('id_pointer', '/id')}.")
        return {"id": str(job_id), "response": response}

    def check(self, state, config):
        templates = _Templates(None, config)
        url = _link(templates, config, "poll_url", state["id"])
        return {**state, "response": templates.call("GET", url, **self._request(templates, config, False))}

    def outcome(self, state, config):
        status = self._status(state["response"], config).lower()
        finished = {s.lower() for s in config.get("success_states", SUCCESS_STATES)}
        finished |= {s.lower() for s in config.get("failure_states", FAILURE_STATES)}
        return self._result(state["id"], state["response"], config) if status in finished else None

    def cancel_remote(self, state, config):
        if config.get("cancel_url"):
            templates = _Templates(None, config)
            url = _link(templates, config, "cancel_url", state["id"])
            templates.call("POST", url, **self._request(templates, config, False))


def _link(templates, config, key, job_id):
    """A status or cancel URL template filled for one remote job id."""
    templates.values["id"] = job_id
    return templates.text(config[key], url=True)
