"""Hostile file contents for the fuzzer: images, audio, video and text that lie about
themselves. Pure functions of their arguments (no I/O), so hypothesis can draw the
arguments and shrink them.

Each builder makes bytes a real client could send: a PNG whose IHDR claims 60000 x 60000
pixels over a few bytes of data, a WAV whose header says 1 Hz or 4 GHz, an MP4 box whose
size runs past the end of the file.
"""

from __future__ import annotations

import functools
import io
import struct
import wave
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_STREAM_BYTES = 1 << 28  # the largest pixel stream a bomb carries: 256 MiB, about 250 kB compressed
LYING_PNG_STREAM_BYTES = 1 << 16  # a header that lies about its rows carries at most this much
MAX_WAV_BODY_BYTES = 1 << 18


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=1)
def _deflated_zero_mib() -> bytes:
    """1 MiB of zeros as raw deflate blocks ending on a full flush: blocks that refer to
    nothing before them, so copies of them can simply be concatenated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)


def _zlib_zeros(count: int) -> bytes:
    """A zlib stream of `count` zero bytes, in milliseconds for any count."""
    whole, rest = divmod(count, 1 << 20)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = _deflated_zero_mib() * whole + tail.compress(bytes(rest)) + tail.flush()
    checksum = 1
    for _ in range(whole):
        checksum = zlib.adler32(bytes(1 << 20), checksum)
    checksum = zlib.adler32(bytes(rest), checksum)
    return b"\x78\xda" + body + struct.pack(">I", checksum)


def png(width: int, height: int, rows: int | None = None, colour_type: int = 0, bit_depth: int = 8) -> bytes:
    """A PNG whose IHDR says `width` x `height`, with `rows` rows of zero pixels actually
    compressed in IDAT (default: all of them). rows < height is a lying header; a large
    all-zero image compresses about 1000:1, which is a decompression bomb."""
    rows = height if rows is None else rows
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type, 1)
    row_bytes = 1 + (width * channels * bit_depth + 7) // 8
    # Every byte of the pixel stream is zero (filter byte 0, black pixels), capped so that a
    # header claiming 2^32 columns stays cheap to build.
    cap = MAX_PNG_STREAM_BYTES if rows >= height else LYING_PNG_STREAM_BYTES
    data = _zlib_zeros(min(row_bytes * max(rows, 0), cap))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def jpeg(width: int = 32, height: int = 24) -> bytes:
    """A real baseline JPEG (OpenCV's encoder)."""
    import cv2

    pixels = (np.arange(width * height * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(height, width, 3)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return encoded.tobytes()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to claim another size."""
    data = bytearray(jpeg())
    position = data.index(b"\xff\xc0")
    data[position + 5 : position + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    return bytes(data)


def wav(
    sample_rate: int, channels: int, bits: int, frames: int, claimed_data_bytes: int | None = None, riff_lie: int = 0
) -> bytes:
    """A PCM WAV written by hand, so every header field can lie: any sample rate, channel
    count or bit depth, a data chunk claiming more (or less) than it holds, a RIFF size off
    by `riff_lie`."""
    block = max(channels * bits // 8, 1)
    # A header may claim 65535 channels of 64 bits; the body stays small whatever it claims.
    body = bytes((np.arange(min(frames * block, MAX_WAV_BODY_BYTES)) % 256).astype(np.uint8))
    data_size = len(body) if claimed_data_bytes is None else claimed_data_bytes
    fmt = struct.pack(
        "<HHIIHH",
        1,
        channels & 0xFFFF,
        sample_rate & 0xFFFFFFFF,
        (sample_rate * block) & 0xFFFFFFFF,
        block & 0xFFFF,
        bits,
    )
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size) + body
    return b"RIFF" + struct.pack("<I", (len(chunks) + riff_lie) & 0xFFFFFFFF) + chunks


def honest_wav(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((np.sin(np.arange(int(seconds * rate)) / 9.0) * 8000).astype(np.int16).tobytes())
    return buffer.getvalue()


def mp4_box(kind: bytes, claimed_size: int, body: bytes) -> bytes:
    """One ISO-BMFF box whose 32-bit size field may lie (0: to end of file, 1: 64-bit size follows)."""
    return struct.pack(">I", claimed_size & 0xFFFFFFFF) + kind + body


def mp4_lying(claimed_size: int, body: bytes) -> bytes:
    ftyp = mp4_box(b"ftyp", 24, b"isom\x00\x00\x02\x00isomiso2")
    return ftyp + mp4_box(b"moov", claimed_size, body)


# Text that has broken text pipelines somewhere: invalid UTF-8, overlong and surrogate
# encodings, BOMs, direction overrides, zero-width and combining floods, NULs.
HOSTILE_TEXTS: tuple[bytes, ...] = (
    b"",
    b" \t\n\r\x0b\x0c",
    b"\x00" * 64,
    b"\xff\xfe\xfd",
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # a UTF-16 surrogate encoded as UTF-8
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    "\ufeffBOM then text".encode(),
    "\u202eevil right-to-left override\u202c".encode(),
    ("a" + "\u0301" * 5000).encode(),  # one letter, 5000 combining accents
    ("\u200b" * 4000).encode(),  # zero-width spaces only
    ("\U0001f469\u200d\U0001f469\u200d\U0001f467" * 500).encode(),  # emoji ZWJ families
    "\U000e0041\U000e0042 tag characters".encode(),
    ("\ufdfd" * 2000).encode(),  # the widest glyph
    "ﬁ ǅ ß İ ﬀ Ⅻ".encode(),  # case mapping and compatibility forms
    b"%s%n%x" * 100,
    ("A" * 70_000).encode(),
)
