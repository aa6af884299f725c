"""The provider plugin contract: AIProvider, its input and result, ProviderError, config helpers.

A provider turns one image into another; it gets its whole config (secrets included) from the
caller, which reads it from the database for every job.
"""
import base64
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import requests

# How much of a provider's output we are willing to download (a runaway URL must not fill memory).
MAX_OUTPUT_BYTES = 100 * 1024 * 1024


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
    output_url: str | None = None  # … where to fetch it (the caller copies it to our storage)
    content_type: str | None = None
    provider_job_id: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def latency_ms(self):
        return int(((self.finished_at or time.time()) - self.started_at) * 1000)


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


def fetch_output(url, timeout):
    """Download an output file (provider URLs expire, so results are copied into our storage)."""
    try:
        with requests.get(url, timeout=timeout, stream=True) as resp:
            if resp.status_code >= 400:
                raise ProviderError(f"Output download answered {resp.status_code}", retryable=resp.status_code >= 500)
            chunks, size = [], 0
            for chunk in resp.iter_content(1024 * 64):
                size += len(chunk)
                if size > MAX_OUTPUT_BYTES:
                    raise ProviderError("The provider's output is larger than we accept.")
                chunks.append(chunk)
            return b"".join(chunks), resp.headers.get("Content-Type", "").split(";")[0] or None
    except requests.RequestException as exc:
        raise ProviderError(f"Output download failed: {exc.__class__.__name__}", retryable=True) from exc


def load_output(value, timeout):
    """An output given as a URL (downloaded) or as base64 / a data URI → (bytes, content type or None)."""
    if value.startswith(("http://", "https://")):
        return fetch_output(value, timeout)
    return decode_base64_image(value)


def decode_base64_image(value):
    """Base64 or a data URI → (bytes, content type or None)."""
    content_type = None
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        content_type = header[5:].split(";")[0] or None
    try:
        return base64.b64decode(value, validate=False), content_type
    except ValueError as exc:
        raise ProviderError("The provider returned output that is neither a URL nor base64.") from exc
