"""The provider plugin contract: AIProvider, its input and result, ProviderError, config helpers.

A provider turns one image into another; it gets its whole config (secrets included) from the
caller, which reads it from the database for every job.
"""
import base64
import re
import threading
import time
from abc import ABC
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests


@dataclass
class ProviderInput:
    data: bytes
    content_type: str  # e.g. image/png, from the decoded format, not the file name
    filename: str = "input"

    def data_uri(self):
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass
class ProcessResult:
    output: bytes | None = None  # the image itself, or …
    output_url: str | None = None  # … where to fetch it (the caller fetches it under guard and verifies it)
    content_type: str | None = None  # set by the caller from the decoded image, never taken from the provider
    provider_job_id: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def latency_ms(self):
        return int(((self.finished_at or time.time()) - self.started_at) * 1000)


# Config field names that hold a credential: any of these words in the name (api_key, X-Auth-Token, apiKey…).
CREDENTIAL_WORDS = {"token", "secret", "password", "passwd", "passphrase", "apikey", "authorization", "bearer",
                    "credential", "credentials", "cookie"}
CREDENTIAL_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("client", "secret")}
# A value that is itself a credential ("Bearer sk-…", "Basic dXNlcjpwYXNz").
CREDENTIAL_VALUE = re.compile(r"\s*(bearer|basic|token)\s+[\w.~+/=-]{8,}\s*", re.I)
# A value taken from the encrypted secrets at call time, e.g. "Bearer {{secret.api_key}}": no credential in clear.
SECRET_REFERENCE = re.compile(r"\{\{\s*secret\.[\w.-]+\s*\}\}")


def _looks_like_credential(name):
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", str(name))]
    return bool(CREDENTIAL_WORDS & set(words)) or any(pair in CREDENTIAL_PAIRS for pair in zip(words, words[1:]))


def _in_clear(value):
    return isinstance(value, str) and value.strip() != "" and not SECRET_REFERENCE.search(value)


def remote_fields(poll_interval=1.0):
    """Config fields of every plugin whose jobs are submitted, then checked by webhook or scheduled poll."""
    return {
        "poll_interval": {"type": "number", "minimum": 0.05, "default": poll_interval,
                          "description": "Seconds between status checks; after the fifth they back off (×1.5 "
                                         "each, up to the server's MAX_POLL_DELAY_SECONDS, 30 by default)."},
        "webhook_poll_interval": {"type": "number", "minimum": 1, "default": 30,
                                  "description": "When the provider reports by webhook (Settings → Site → Public "
                                                 "URL set): seconds between the fallback status checks."},
    }


class ProviderError(Exception):
    """A failed call; `retryable` says whether trying again may help (5xx, 429, network)."""

    def __init__(self, message, *, retryable=False, provider_job_id=None):
        super().__init__(message)
        self.retryable = retryable
        self.provider_job_id = provider_job_id


class CancelledByUser(ProviderError):
    """The job was cancelled while the provider worked on it; the remote job was cancelled too."""


def config_schema(properties, required=()):
    """A provider's JSON Schema: its own fields plus timeout, retries and params, which every job uses."""
    return {
        "type": "object",
        "properties": {
            **properties,
            "timeout": {"type": "number", "minimum": 1, "default": 300,
                        "description": "Seconds one attempt may take before it is cancelled."},
            "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 2,
                        "description": "Extra attempts after a retryable error (5xx, 429, network)."},
            "params": {"type": "object", "default": {}, "description": "Model parameters sent with the image."},
            "param_names": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                            "description": "Renames the function's customer parameters for this provider, e.g. "
                                           "{\"scale\": \"upscale_factor\"}."},
            "allow_hosts": {"type": "array", "items": {"type": "string"}, "default": [],
                            "description": "Host names or addresses on internal networks (private, loopback…) "
                                           "that output URLs may point to, e.g. a GPU box on your LAN. "
                                           "Other internal addresses are always refused."},
        },
        "required": list(required),
    }


class WebhookRefused(Exception):
    """A provider webhook we do not believe (bad signature, stale timestamp): nothing changes."""


class AIProvider(ABC):
    """Base class of every provider plugin. Subclasses set name, config_schema and secret_fields.

    A plugin that answers within one call implements process_image. A plugin for a remote API whose jobs take
    seconds or minutes sets remote and implements submit / check / outcome / cancel_remote: the job path then
    submits and returns, and a webhook or a scheduled poll checks it once at a time; process_image (for the
    admin's Test provider) waits for the answer with the same four methods."""

    key: str = ""  # set by @register
    name: str = ""
    config_schema: dict = config_schema({})
    secret_fields: tuple = ()  # config fields stored encrypted in Provider.secrets
    remote: bool = False
    runs_here: bool = False  # does the work on our CPU (its jobs go to the CPU queue)
    webhook_secret_field: str | None = None  # secret field holding the key that signs its webhooks

    def is_remote(self, config):
        """Whether jobs with this config are submitted and then checked (True) or answered in one call."""
        return self.remote

    def process_image(self, input, config, *, should_cancel=lambda: False):
        """Process one image with this (merged, secrets included) config; raise ProviderError on failure."""
        if not self.is_remote(config):
            raise self.unsupported("answer in one call with this configuration")
        return wait_for_remote(self, input, config, should_cancel)

    # The remote interface. A plugin that does not run remote jobs keeps these: asked anyway (a job whose
    # function moved to it while it waited elsewhere, a misconfigured plugin), it fails plainly and for good,
    # like any refused request, instead of crashing the worker with an unexpected exception.

    def submit(self, input, config, webhook_url=None):
        """Start a remote job; returns its state (JSON-serialisable, with "id"), kept until the job ends."""
        raise self.unsupported("start remote jobs")

    def check(self, state, config):
        """One status request for a remote job; returns its new state."""
        raise self.unsupported("check remote jobs")

    def outcome(self, state, config):
        """None while the remote job runs; a ProcessResult once it succeeded; ProviderError once it failed."""
        raise self.unsupported("report on remote jobs")

    def cancel_remote(self, state, config):
        """Ask the provider to stop a remote job."""
        raise self.unsupported("cancel remote jobs")

    def fetch_webhook_secret(self, config):
        """The key that signs this provider's webhooks, from its API (plugins with webhook_secret_field)."""
        raise self.unsupported("fetch a webhook signing key")

    def unsupported(self, work):
        """The error for work this plugin does not do: not retryable, since asking again cannot help."""
        return ProviderError(f"The {self.name or self.key} provider cannot {work}.", retryable=False)

    def verify_webhook(self, headers, body, config):
        """Raise WebhookRefused unless a webhook for one of our jobs is authentic. The per-job token in the
        URL is checked by the caller; plugins whose provider signs its webhooks check the signature too."""

    @classmethod
    def credential_fields(cls, config):
        """Paths ("headers/X-Api-Key") in a config JSON, at any depth, that hold a credential in clear: this
        plugin's secret fields, fields named like one (token, password, api_key…) with a literal value, and
        values such as "Bearer …". Config is stored and shown in plain text; secrets have encrypted inputs."""
        found = []

        def walk(value, path):
            if isinstance(value, dict):
                for key, item in value.items():
                    here = path + [str(key)]
                    if (not path and key in cls.secret_fields) or (_looks_like_credential(key) and _in_clear(item)):
                        found.append("/".join(here))
                    else:
                        walk(item, here)
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, path + [str(index)])
            elif _in_clear(value) and CREDENTIAL_VALUE.fullmatch(value):
                found.append("/".join(path) or "config")

        walk(config if isinstance(config, dict) else {}, [])
        return found

    @classmethod
    def defaults(cls):
        return {k: v["default"] for k, v in cls.config_schema.get("properties", {}).items() if "default" in v}


# --- helpers for HTTP providers ---


def auth_headers(token):
    if not token:
        raise ProviderError("No API token is configured for this provider (Providers → Secrets).")
    return {"Authorization": f"Bearer {token}"}


_sessions = {}
_sessions_lock = threading.Lock()


def session_for(url):
    """One requests.Session per provider origin, so status checks reuse their connections."""
    parts = urlsplit(url)
    origin = (parts.scheme, parts.netloc)
    session = _sessions.get(origin)
    if session is None:
        with _sessions_lock:
            session = _sessions.setdefault(origin, requests.Session())
    return session


def call(method, url, *, timeout, **kwargs):
    """One HTTP call mapped to ProviderError: network errors, 429 and 5xx are retryable, 4xx are not."""
    try:
        resp = session_for(url).request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise ProviderError(f"{method} {url} failed: {exc.__class__.__name__}", retryable=True) from exc
    if resp.status_code == 429 or resp.status_code >= 500:
        raise ProviderError(f"{method} {url} answered {resp.status_code}: {resp.text[:200]}", retryable=True)
    if resp.status_code >= 400:
        raise ProviderError(f"{method} {url} answered {resp.status_code}: {resp.text[:200]}")
    try:
        return resp.json()
    except ValueError as exc:
        raise ProviderError(f"{method} {url} answered {resp.status_code} without JSON", retryable=True) from exc


def image_input(input, config):
    """The remote job's input: the configured params plus the image as a data URI under input_key."""
    return {**(config.get("params") or {}), config.get("input_key", "image"): input.data_uri()}


def request_timeout(config):
    """One HTTP call's timeout: the job's timeout, but never a single call hanging for minutes."""
    return min(float(config.get("timeout", 300)), 30)


def wait_for_remote(plugin, input, config, should_cancel):
    """Submit a remote job and check it until it ends (Test provider waits for one answer this way; jobs never
    do: they are checked by webhook or scheduled poll). On the deadline or a cancel request the remote job is
    cancelled and ProviderError raised."""
    deadline = time.monotonic() + float(config.get("timeout", 300))
    state = plugin.submit(input, config)
    try:
        while (result := plugin.outcome(state, config)) is None:
            if should_cancel():
                stopping = CancelledByUser("Cancelled while the provider was processing.")
            elif time.monotonic() >= deadline:
                stopping = timed_out()
            else:
                time.sleep(float(config.get("poll_interval", 1.0)))
                state = plugin.check(state, config)
                continue
            try:
                plugin.cancel_remote(state, config)
            except ProviderError:
                pass  # best effort: the job ends either way, and the reason that matters is `stopping`
            raise stopping
    except ProviderError as exc:
        exc.provider_job_id = exc.provider_job_id or state.get("id")
        raise
    return result


def timed_out():
    # Retryable: a stuck remote job says little about the next one, and a fallback may serve.
    return ProviderError("The provider did not finish within the configured timeout; the job was cancelled there.",
                         retryable=True)


def output_fields(value):
    """An output given as a URL, base64 or a data URI → the ProcessResult fields that carry it. A URL is not
    fetched here: the caller downloads it through the guarded fetcher and verifies what arrives."""
    if "://" in value[:16] and not value.startswith("data:"):
        return {"output_url": value}
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return {"output": base64.b64decode(value, validate=False)}
    except ValueError as exc:
        raise ProviderError("The provider returned output that is neither a URL nor base64.") from exc
