"""Test images made on the fly: real ones, broken ones and hostile ones."""
import functools
import io
import os
import struct
import zlib

from PIL import Image


def image_bytes(fmt="PNG", size=(64, 48), color=(200, 120, 40)):
    buffer = io.BytesIO()
    img = Image.new("RGB", size, color)
    # A gradient, so processing visibly changes pixels.
    for x in range(size[0]):
        img.putpixel((x, x * size[1] // size[0]), (x * 4 % 256, 30, 220))
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def noise_png(size=(800, 800)):
    """Incompressible, so its file size is about width × height × 3 bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width, height):
    """A PNG that claims width×height but carries almost no data: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def truncated_jpeg():
    data = image_bytes("JPEG", size=(256, 256))
    return data[: len(data) // 2]


@functools.lru_cache(maxsize=None)
def solid_png(width, height, bit_depth=8, color_type=2):
    """A real single-colour PNG of any size, compressed row by row (never held decoded): a decompression
    bomb that is also a valid image. color_type 2 is RGB, 0 grey; bit_depth 1 makes the biggest ones cheap."""
    channels = {0: 1, 2: 3}[color_type]
    row = b"\x00" + b"\x00" * ((width * channels * bit_depth + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
