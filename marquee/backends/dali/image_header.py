"""Cheap checks on encoded image bytes, before anything decodes them.

Reading the header gives the format and the pixel dimensions for a few microseconds, so
a decompression bomb (a tiny PNG that claims 50000 x 50000 pixels) or a truncated
upload is refused with a clear message instead of reaching the decoder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_TAIL = 4096  # an EOI / IEND must appear this close to the end (trailers after it are tolerated)


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why and what is allowed."""


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "jpeg" | "png"
    width: int
    height: int


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> ImageHeader:
    if len(data) == 0:
        raise ImageRejected("empty; expected JPEG or PNG bytes")
    if len(data) > max_bytes:
        raise ImageRejected(f"{len(data)} bytes; the limit (max_image_bytes) is {max_bytes}")
    if data.startswith(PNG_SIGNATURE):
        header = _png_header(data)
    elif data.startswith(JPEG_SOI):
        header = _jpeg_header(data)
    else:
        raise ImageRejected(f"not a JPEG or PNG (starts with {data[:8].hex()}); allowed formats: JPEG, PNG")
    if header.width < 1 or header.height < 1:
        raise ImageRejected(f"{header.format} header says {header.width}x{header.height} pixels; must be at least 1x1")
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise ImageRejected(
            f"{header.width}x{header.height} = {pixels} pixels; the limit (max_image_pixels) is {max_pixels}"
        )
    return header


def _png_header(data: bytes) -> ImageHeader:
    # Signature (8) + IHDR chunk length (4) + "IHDR" (4) + width (4) + height (4).
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageRejected("PNG without an IHDR chunk (corrupt or truncated)")
    width, height = struct.unpack(">II", data[16:24])
    if b"IEND" not in data[-_TAIL:]:
        raise ImageRejected("truncated PNG: no IEND chunk at the end")
    return ImageHeader("png", width, height)


def _jpeg_header(data: bytes) -> ImageHeader:
    size = None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ImageRejected(f"corrupt JPEG: expected a marker at byte {position}, found {data[position]:#04x}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2:
            raise ImageRejected(f"corrupt JPEG: segment {marker:#04x} at byte {position} has length {length}")
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows, headers are over
            break
        position += 2 + length
    if size is None:
        raise ImageRejected("corrupt or truncated JPEG: no frame header (SOF) before the image data")
    if JPEG_EOI not in data[-_TAIL:]:
        raise ImageRejected("truncated JPEG: no end-of-image marker (FFD9) at the end")
    return ImageHeader("jpeg", *size)
