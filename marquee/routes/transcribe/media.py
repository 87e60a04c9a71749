"""Encoded media bytes -> 16 kHz mono 16-bit samples, with PyAV (FFmpeg's libraries).

Any container and codec FFmpeg reads: WAV, FLAC, OGG/Vorbis, MP3, M4A/AAC, Opus in Ogg or
WebM, and the audio track of MP4, MOV and MKV video files (the first audio stream; the
video stream is never decoded). Resampling and downmixing go through FFmpeg's
swresample, what openai-whisper's ffmpeg call and faster-whisper's `decode_audio` use.
Samples stay 16-bit, as openai-whisper's `ffmpeg -f s16le` makes them: a 2-hour clip is
230 MB instead of 460 MB as float32 (see `Pcm16`).

Problems become `MediaError`s whose message names the clip, what FFmpeg detected (the
container and codecs, when it got that far) and what is accepted, so the route can
answer that clip with an error while the other clips of the request go on.
"""

from __future__ import annotations

import io

import numpy as np

SAMPLE_RATE = 16_000
ACCEPTED = "an audio file (WAV, FLAC, OGG, MP3, M4A/AAC, Opus/WebM) or a video file with an audio track (MP4, MOV, MKV)"
# Telephone audio is 8 kHz and studio formats reach 384 kHz; below 4 kHz nothing is speech.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
# Decoded samples are appended to blocks of this many samples (1 minute) and joined once:
# peak memory stays near one copy of the clip, not the sum of every growing list.
_BLOCK = 60 * SAMPLE_RATE


class MediaError(ValueError):
    """The bytes are not media FFmpeg can decode into audio; the message says why."""


def describe(container) -> str:
    """'mp4 (video: h264, audio: aac)' - what FFmpeg found, for error messages."""
    streams = ", ".join(f"{s.type}: {_codec_name(s)}" for s in container.streams if s.type in ("audio", "video"))
    return f"{container.format.name} ({streams or 'no audio or video streams'})"


def _codec_name(stream) -> str:
    # FFmpeg opens a stream it has no decoder for (a WAV of 0-bit samples) without a codec context.
    return stream.codec_context.name if stream.codec_context is not None else "unknown codec"


class Pcm16:
    """A clip's samples as 16-bit PCM; any slice or index of it reads as float32 in [-1, 1).

    The route only ever reads windows of a clip (VAD blocks, 30-second chunks), so the
    whole clip is never held as float32."""

    def __init__(self, pcm: np.ndarray):
        self.pcm = pcm

    @property
    def size(self) -> int:
        return self.pcm.size

    def __getitem__(self, index) -> np.ndarray:
        return self.pcm[index].astype(np.float32) * np.float32(1 / 32768)


def decode_audio(data: bytes, label: str, max_seconds: float | None = None) -> Pcm16:
    """All samples of the first audio stream, mono 16-bit at 16 kHz.

    `label` names the clip in messages ("clip 2"). `max_seconds` stops decoding early
    (raising) when a clip is over the route's limit, before its samples fill memory.
    """
    import av

    if not data:
        raise MediaError(f"{label}: `audio` is empty (0 bytes); expected {ACCEPTED}")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as error:
        reason = _reason(error)
        raise MediaError(f"{label}: {sniff(data)}, which FFmpeg cannot read ({reason}); expected {ACCEPTED}") from None
    with container:
        if not container.streams.audio:
            raise MediaError(f"{label}: {describe(container)} has no audio track; expected {ACCEPTED}")
        check_stream(container, label)
        try:
            return _decode_stream(container, label, max_seconds)
        except av.FFmpegError as error:
            raise MediaError(
                f"{label}: the audio of {describe(container)} is corrupt or truncated ({_reason(error)})"
            ) from None


def check_stream(container, label: str) -> None:
    """Refuse a stream whose header sets a rate or channel count no recording has, before
    decoding: resampling to 16 kHz multiplies the samples by 16 kHz / rate, so a 20 kB WAV
    that says 1 Hz would become 320 million samples (found by the fuzzer, perf/fuzz)."""
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise MediaError(f"{label}: {describe(container)}: FFmpeg has no decoder for this audio; expected {ACCEPTED}")
    rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise MediaError(
            f"{label}: {describe(container)} says {rate} Hz; allowed: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise MediaError(f"{label}: {describe(container)} says {channels} channels; allowed: 1 to {MAX_CHANNELS}")


def _decode_stream(container, label: str, max_seconds: float | None) -> Pcm16:
    import av

    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    samples = _Samples()
    for frame in container.decode(stream):
        for converted in resampler.resample(frame):
            samples.add(converted.to_ndarray().reshape(-1))
        if limit is not None and samples.count > limit:
            raise ClipTooLong(f"{label}: audio lasts over {max_seconds:.0f} s", samples.count / SAMPLE_RATE)
    for converted in resampler.resample(None):
        samples.add(converted.to_ndarray().reshape(-1))
    if samples.count == 0:
        raise MediaError(f"{label}: {describe(container)} holds no audio samples")
    return Pcm16(samples.join())


class ClipTooLong(MediaError):
    """Decoding stopped at the route's duration limit; `seconds` is how far it got."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


class _Samples:
    """16-bit samples collected in fixed blocks (no per-frame list of small arrays)."""

    def __init__(self):
        self.blocks: list[np.ndarray] = []
        self.filled = 0  # samples in the last block
        self.count = 0

    def add(self, values: np.ndarray) -> None:
        while values.size:
            if not self.blocks or self.filled == _BLOCK:
                self.blocks.append(np.empty(_BLOCK, np.int16))
                self.filled = 0
            take = min(values.size, _BLOCK - self.filled)
            self.blocks[-1][self.filled : self.filled + take] = values[:take]
            self.filled += take
            self.count += take
            values = values[take:]

    def join(self) -> np.ndarray:
        if len(self.blocks) == 1:
            return self.blocks[0][: self.count].copy()
        out = np.empty(self.count, np.int16)
        position = 0
        while self.blocks:
            block = self.blocks.pop(0)  # release each block as soon as it is copied
            take = min(_BLOCK, self.count - position)
            out[position : position + take] = block[:take]
            position += take
        return out


# Leading bytes of common containers, to say what a file FFmpeg refuses claims to be.
_SIGNATURES = (
    (4, b"ftyp", "an MP4/MOV/M4A file (ISO base media)"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM file"),
    (0, b"ID3", "an MP3 file"),
    (0, b"\xff\xfb", "an MP3 file"),
    (0, b"RIFF", "a RIFF (WAV/AVI) file"),
    (0, b"OggS", "an Ogg file"),
    (0, b"fLaC", "a FLAC file"),
)


def sniff(data: bytes) -> str:
    """What the first bytes say the file is ("an MP4/MOV/M4A file (ISO base media)")."""
    for offset, magic, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return f"{name} that is corrupt or truncated"
    return f"not a known media container (starts with {data[:8].hex(' ')})"


def _reason(error: Exception) -> str:
    """FFmpeg's own words, without PyAV's errno prefix and file name."""
    text = getattr(error, "strerror", None) or str(error)
    return text.strip() or type(error).__name__
