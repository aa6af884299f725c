"""Calling a provider plugin once and getting verified image bytes back, for jobs and Test provider alike:
an output counts only once decoded as an allowed image format within the caps, typed by us, never by them.
"""
import io

from PIL import Image, UnidentifiedImageError

from app.providers.base import ProviderError, request_timeout
from app.services import fetch, settings

# Formats a result may have: every browser shows them, and none can carry script.
OUTPUT_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
NOT_AN_IMAGE = "The provider returned something that is not an image."


class NotAnImage(ProviderError):
    """The output is not an image we accept; never retried (the same call would return the same thing)."""

    customer_message = NOT_AN_IMAGE


def produce(plugin, source, config, *, should_cancel=lambda: False):
    """plugin.process_image, then its output downloaded (guarded) and verified. Returns the ProcessResult
    with output = the verified bytes and content_type = the type we determined; ProviderError otherwise."""
    return complete(plugin.process_image(source, config, should_cancel=should_cancel), config)


def complete(result, config):
    """A provider's result made safe to store: its output downloaded (guarded) when given as a URL, then
    verified and typed by us. ProviderError otherwise."""
    if result.output is None:
        if not result.output_url:
            raise NotAnImage(f"{NOT_AN_IMAGE} (no output at all)", provider_job_id=result.provider_job_id)
        result.output = download(result.output_url, config, result.provider_job_id)
    try:
        result.content_type, size = verify(result.output)
    except ProviderError as exc:
        exc.provider_job_id = result.provider_job_id
        raise
    result.metadata = {**result.metadata, "size": list(size)}
    return result


def download(url, config, provider_job_id=None):
    """An output URL fetched through the guard, with no credentials, within the byte cap."""
    try:
        data, _declared_type = fetch.fetch(url, allow_hosts=config.get("allow_hosts") or (),
                                           max_bytes=settings.get("providers.max_output_bytes"),
                                           timeout=request_timeout(config))
    except fetch.FetchError as exc:
        raise ProviderError(f"Output download from {url} refused or failed: {exc}", retryable=exc.retryable,
                            provider_job_id=provider_job_id) from None
    return data


def verify(data):
    """(content type, (width, height)) of bytes that decode as an allowed image within the caps;
    NotAnImage (or ProviderError for an oversize image) otherwise."""
    max_bytes, max_pixels = settings.get("providers.max_output_bytes"), settings.get("providers.max_output_pixels")
    if not data:
        raise NotAnImage(f"{NOT_AN_IMAGE} (empty output)")
    if len(data) > max_bytes:
        raise ProviderError(f"The output is {len(data):,} bytes; the limit is {max_bytes:,} bytes.")
    try:
        # Only the allowed decoders may even look at the bytes: no SVG, HTML or exotic format parser runs.
        with Image.open(io.BytesIO(data), formats=list(OUTPUT_FORMATS)) as img:
            fmt, size = img.format, img.size
            if size[0] * size[1] > max_pixels:
                raise ProviderError(f"The output is {size[0]}×{size[1]} pixels; the limit is {max_pixels:,}.")
            img.load()
    except ProviderError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"{NOT_AN_IMAGE} ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    return OUTPUT_FORMATS[fmt], size
