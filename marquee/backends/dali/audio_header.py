"""Cheap checks on encoded audio bytes, before anything decodes them.

An audio file's header sets how much the decoder allocates: the pipeline resamples to
16 kHz, so a 20 kB WAV whose header says 1 Hz decodes to 320 million samples (the
fuzzer found it: 9 GB of resident memory and minutes of CPU in the DALI stub). Reading
the header takes microseconds, so a sample rate outside what real recordings use, a
channel count of zero, or a clip longer than the limit is refused with a clear message
before decoding.

Pure Python, no imports beyond the standard library: the DALI backend (embedded server)
and the `transcribe` route (which also runs in front of the NGC container's native DALI
backend) both install this file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Telephone audio is 8 kHz; studio formats reach 384 kHz. Below 4 kHz nothing is speech.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32


class AudioRejected(ValueError):
    """The bytes are not acceptable audio; the message says why and what is allowed."""


@dataclass(frozen=True)
class AudioHeader:
    format: str  # "wav" | "flac" | "ogg"
    sample_rate: int
    channels: int
    duration_s: float | None  # None when the header does not say (Ogg)


def check_audio(data: bytes, max_duration_s: float) -> AudioHeader:
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        header = _wav_header(data)
    elif data.startswith(b"fLaC"):
        header = _flac_header(data)
    elif data.startswith(b"OggS"):
        header = _ogg_header(data)
    else:
        raise AudioRejected(f"not a WAV, FLAC or OGG file (starts with {data[:8].hex()}); allowed: WAV, FLAC, OGG")
    if not MIN_SAMPLE_RATE <= header.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioRejected(
            f"{header.format} header says {header.sample_rate} Hz; allowed: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )
    if not 1 <= header.channels <= MAX_CHANNELS:
        raise AudioRejected(f"{header.format} header says {header.channels} channels; allowed: 1 to {MAX_CHANNELS}")
    if header.duration_s is not None and header.duration_s > max_duration_s:
        raise AudioRejected(
            f"{header.format} header says {header.duration_s:.1f} s; "
            f"the limit (max_duration_s) is {max_duration_s:.0f} s"
        )
    return header


def _wav_header(data: bytes) -> AudioHeader:
    fmt, data_offset, data_size = None, None, 0
    position = 12
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        (size,) = struct.unpack("<I", data[position + 4 : position + 8])
        if kind == b"fmt " and size >= 16 and position + 24 <= len(data):
            fmt = struct.unpack("<HHIIHH", data[position + 8 : position + 24])
        elif kind == b"data":
            data_offset, data_size = position + 8, size
            break
        position += 8 + size + (size & 1)
    if fmt is None or data_offset is None:
        raise AudioRejected("WAV without a `fmt ` chunk before its `data` chunk (corrupt or truncated)")
    _, channels, sample_rate, _, block_align, _ = fmt
    # What a decoder can read is what the file holds, whatever the chunk claims (streaming
    # writers put 0 or 0xFFFFFFFF there).
    available = len(data) - data_offset
    readable = min(data_size, available) if data_size else available
    frames = readable / block_align if block_align else 0.0
    duration = frames / sample_rate if sample_rate else None
    return AudioHeader("wav", sample_rate, channels, duration)


def _flac_header(data: bytes) -> AudioHeader:
    # "fLaC", then the STREAMINFO block: 4 bytes of block header, then min/max block size
    # (2 + 2), min/max frame size (3 + 3), and 64 bits: rate (20), channels - 1 (3),
    # bits per sample - 1 (5), total samples (36).
    if len(data) < 8 + 18 or data[4] & 0x7F != 0:
        raise AudioRejected("FLAC without a STREAMINFO block (corrupt or truncated)")
    (packed,) = struct.unpack(">Q", data[18:26])
    sample_rate = packed >> 44
    channels = ((packed >> 41) & 0x7) + 1
    total = packed & ((1 << 36) - 1)
    duration = total / sample_rate if total and sample_rate else None
    return AudioHeader("flac", sample_rate, channels, duration)


def _ogg_header(data: bytes) -> AudioHeader:
    if len(data) < 28:
        raise AudioRejected("OGG page header truncated")
    packet = 27 + data[26]  # the segment table follows the 27-byte page header
    body = data[packet : packet + 19]
    if body.startswith(b"\x01vorbis") and len(body) >= 16:
        channels = body[11]
        (sample_rate,) = struct.unpack("<I", body[12:16])
    elif body.startswith(b"OpusHead") and len(body) >= 16:
        channels = body[9]
        (sample_rate,) = struct.unpack("<I", body[12:16])
        sample_rate = sample_rate or 48_000  # 0: "unspecified"; Opus always decodes at 48 kHz
    else:
        raise AudioRejected("OGG stream is neither Vorbis nor Opus; allowed: OGG Vorbis, OGG Opus")
    return AudioHeader("ogg", sample_rate, channels, None)
