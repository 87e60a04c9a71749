"""Header checks that refuse bad image bytes before anything decodes them."""

import struct
import zlib

import pytest

from export.moderation_image import synthetic
from marquee.backends.dali.image_header import ImageRejected, check_image

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 1_000_000}


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_check_image_reads_jpeg_and_png_dimensions():
    jpeg = synthetic.encode(synthetic.plain_image(120, 200, 0), ".jpg")
    png = synthetic.encode(synthetic.plain_image(90, 70, 0), ".png")
    assert (check_image(jpeg, **LIMITS).format, check_image(jpeg, **LIMITS).width) == ("jpeg", 200)
    assert check_image(jpeg, **LIMITS).height == 120
    assert (check_image(png, **LIMITS).format, check_image(png, **LIMITS).width, check_image(png, **LIMITS).height) == (
        "png",
        70,
        90,
    )


def test_check_image_rejects_non_image_bytes_naming_allowed_formats():
    with pytest.raises(ImageRejected, match="not a JPEG or PNG.*allowed formats: JPEG, PNG"):
        check_image(b"GIF89a not supported", **LIMITS)


def test_check_image_rejects_empty_bytes():
    with pytest.raises(ImageRejected, match="empty"):
        check_image(b"", **LIMITS)


def test_check_image_rejects_truncated_jpeg():
    jpeg = synthetic.encode(synthetic.plain_image(300, 300, 1), ".jpg")
    with pytest.raises(ImageRejected, match="truncated JPEG"):
        check_image(jpeg[: len(jpeg) // 2], **LIMITS)


def test_check_image_rejects_jpeg_cut_inside_its_headers():
    jpeg = synthetic.encode(synthetic.plain_image(300, 300, 1), ".jpg")
    with pytest.raises(ImageRejected, match="JPEG"):
        check_image(jpeg[:40], **LIMITS)


def test_check_image_rejects_truncated_png():
    png = synthetic.encode(synthetic.plain_image(300, 300, 1), ".png")
    with pytest.raises(ImageRejected, match="truncated PNG"):
        check_image(png[: len(png) - 20], **LIMITS)


def test_check_image_rejects_too_many_pixels_naming_the_limit():
    with pytest.raises(
        ImageRejected, match=r"50000x50000 = 2500000000 pixels; the limit \(max_image_pixels\) is 1000000"
    ):
        check_image(_png_claiming(50_000, 50_000), **LIMITS)


def test_check_image_rejects_too_many_bytes_naming_the_limit():
    png = synthetic.encode(synthetic.plain_image(100, 100, 1), ".png")
    with pytest.raises(ImageRejected, match=r"the limit \(max_image_bytes\) is 100"):
        check_image(png, max_bytes=100, max_pixels=10**9)


def test_check_image_rejects_zero_sized_header():
    with pytest.raises(ImageRejected, match="at least 1x1"):
        check_image(_png_claiming(0, 10), **LIMITS)
