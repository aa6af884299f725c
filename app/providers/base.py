"""The provider plugin contract: AIProvider, its input and result, ProviderError, config helpers.

A provider turns one image into another; it gets its whole config (secrets included) from the
caller, which reads it from the database for every job.
"""
import base64
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

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
            "allow_hosts": {"type": "array", "items": {"type": "string"}, "default": [],
                            "description": "Host names or addresses on internal networks (private, loopback…) "
                                           "that output URLs may point to, e.g. a GPU box on your LAN. "
                                           "Other internal addresses are always refused."},
        },
        "required": list(required),
    }


class AIProvider(ABC):
    """Base class of every provider plugin. Subclasses set name, config_schema and secret_fields."""

    key: str = ""  # set by @register
    name: str = ""
    config_schema: dict = config_schema({})
    secret_fields: tuple = ()  # config fields stored encrypted in Provider.secrets

    @abstractmethod
    def process_image(self, input, config, *, should_cancel=lambda: False):
        """Process one image with this (merged, secrets included) config; raise ProviderError on failure."""

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


def call(method, url, *, timeout, **kwargs):
    """One HTTP call mapped to ProviderError: network errors, 429 and 5xx are retryable, 4xx are not."""
    try:
        resp = requests.request(method, url, timeout=timeout, **kwargs)
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


def run_remote(config, *, create, fetch, cancel, is_done, should_cancel):
    """Create a remote job, then poll it until is_done; on the deadline or a cancel request, cancel it
    remotely and raise. Returns the final remote state."""
    deadline = time.monotonic() + float(config.get("timeout", 300))
    state = create()
    remote_id = state.get("id")
    try:
        while not is_done(state):
            stopping = CancelledByUser("Cancelled while the provider was processing.") if should_cancel() else (
                # Retryable: a stuck remote job says little about the next one, and a fallback may serve.
                ProviderError("The provider did not finish within the configured timeout; the job was cancelled "
                              "there.", retryable=True)
                if time.monotonic() >= deadline else None)
            if stopping is not None:
                try:
                    cancel(state)
                except ProviderError:
                    pass  # best effort: the job ends either way, and the reason that matters is `stopping`
                raise stopping
            time.sleep(float(config.get("poll_interval", 1.0)))
            state = fetch(state)
    except ProviderError as exc:
        exc.provider_job_id = remote_id
        raise
    return state


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
