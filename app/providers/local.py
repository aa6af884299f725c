"""Local provider: real image processing in-process with Pillow, no network.

Operations: enhance, upscale (×2/×4 Lanczos), hdr (local tone mapping), denoise, and noop (benchmarks).
"""
import io
import time

from PIL import Image, ImageChops, ImageFilter, ImageOps

from app.providers.base import AIProvider, ProcessResult, ProviderError, config_schema
from app.providers.registry import register

OUTPUT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Formats an input may be decoded as, by the content type the upload check determined.
INPUT_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/tiff": "TIFF",
                 "image/bmp": "BMP", "image/gif": "GIF"}
MAX_OUTPUT_PIXELS = 64_000_000  # about 256 MB as RGBA
# zlib level 1: about 7× faster than Pillow's default 6 on photos, for about 10% more bytes.
PNG_COMPRESS_LEVEL = 1


def _enhance(img, params):
    img = ImageOps.autocontrast(img.convert("RGB"), cutoff=params.get("cutoff", 1))
    return img.filter(ImageFilter.UnsharpMask(radius=params.get("radius", 2), percent=params.get("percent", 120),
                                              threshold=params.get("threshold", 3)))


def _scale(params):
    scale = int(params.get("scale", 2))
    if scale not in (2, 4):
        raise ProviderError("Upscale supports scale 2 or 4.")
    return scale


def _upscale(img, params):
    scale = _scale(params)
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.LANCZOS)


def _hdr(img, params):
    """Local tone mapping: divide by a blurred luminance so shadows lift and highlights compress."""
    rgb = img.convert("RGB")
    radius = params.get("radius", max(4, min(rgb.size) // 16))
    blurred = rgb.convert("L").filter(ImageFilter.GaussianBlur(radius))
    # Shadows get more gain than highlights: gain = 255 - local luminance, blended over the original.
    gain = ImageOps.invert(blurred).convert("RGB")
    lifted = ImageChops.screen(rgb, ImageChops.multiply(rgb, gain))
    mixed = Image.blend(rgb, lifted, params.get("strength", 0.6))
    return ImageOps.autocontrast(mixed, cutoff=0.5)


def _denoise(img, params):
    return img.convert("RGB").filter(ImageFilter.MedianFilter(size=int(params.get("size", 3))))


OPERATIONS = {"enhance": _enhance, "upscale": _upscale, "hdr": _hdr, "denoise": _denoise, "noop": lambda img, _p: img}


@register("local")
class LocalProvider(AIProvider):
    name = "Local (Pillow)"
    runs_here = True
    config_schema = config_schema({
        "operation": {"type": "string", "enum": sorted(OPERATIONS), "default": "enhance",
                      "description": "What to do to the image."},
        "output_format": {"type": "string", "enum": sorted(OUTPUT_TYPES), "default": "PNG",
                          "description": "Set per function (its Output format field): PNG (fast compression), "
                                         "WEBP or JPEG."},
        "output_quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": 90,
                           "description": "WEBP and JPEG quality, set per function."},
        "max_output_pixels": {"type": "integer", "minimum": 1, "default": MAX_OUTPUT_PIXELS,
                              "description": "Largest result (width × height) an operation may make; bigger "
                                             "ones fail before any work, so an upscale cannot exhaust memory."},
    }, required=["operation"])

    def process_image(self, input, config, *, should_cancel=lambda: False):
        started = time.time()
        operation = OPERATIONS.get(config.get("operation", "enhance"))
        if operation is None:
            raise ProviderError(f"Unknown local operation {config.get('operation')!r}; use one of {sorted(OPERATIONS)}.")
        fmt = config.get("output_format", "PNG")
        params = config.get("params") or {}
        try:
            with Image.open(io.BytesIO(input.data), formats=[INPUT_FORMATS.get(input.content_type, "PNG")]) as img:
                factor = _scale(params) ** 2 if operation is _upscale else 1
                limit = int(config.get("max_output_pixels", MAX_OUTPUT_PIXELS))
                if img.width * img.height * factor > limit:
                    raise ProviderError(f"The result would have {img.width * img.height * factor:,} pixels; this "
                                        f"provider makes at most {limit:,} (max_output_pixels).")
                img.load()
                out = operation(img, params)
        except (OSError, ValueError) as exc:
            raise ProviderError(f"The image could not be processed: {exc}") from exc
        if fmt == "JPEG" and out.mode not in ("RGB", "L"):
            out = out.convert("RGB")
        buffer = io.BytesIO()
        if fmt == "PNG":
            out.save(buffer, format=fmt, compress_level=PNG_COMPRESS_LEVEL)
        else:
            out.save(buffer, format=fmt, quality=int(config.get("output_quality", 90)))
        return ProcessResult(output=buffer.getvalue(), content_type=OUTPUT_TYPES[fmt], started_at=started,
                             finished_at=time.time(), metadata={"operation": config.get("operation"),
                                                                "size": list(out.size)})
