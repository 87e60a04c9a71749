"""Speech for tests and benchmarks, synthesized on the spot with espeak-ng (no downloads).

- `SENTENCES`: a fixed list of sentences, each with its reference text;
- `synthesize(text)`: 16-bit mono WAV bytes from espeak-ng (its native rate is 22050 Hz);
- `long_clip()`: one clip longer than 60 s made of many sentences, with its reference text;
- `transcode(wav, "flac" | "ogg" | "wav", rate)`: other containers and rates via PyAV
  (FFmpeg's libraries), so every decoder path sees the same speech;
- `decode_16k(data)`: the reference decoder/resampler (FFmpeg's swresample through PyAV,
  what openai-whisper's ffmpeg call and faster-whisper's `decode_audio` use).

espeak-ng output is deterministic for a given version, text, voice and speed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22_050  # espeak-ng's native output rate
DEFAULT_VOICE = "en-us"
DEFAULT_SPEED = 160  # words per minute; a little slower than espeak's 175 helps recognition

# Plain sentences with words Whisper's vocabulary knows; numbers are spelled out so the
# reference text is what espeak says (no "1,000" vs "one thousand" ambiguity).
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Broadcasters need accurate subtitles for every program they air.",
    "The weather today is sunny with a light breeze from the west.",
    "Please remember to bring your passport to the airport.",
    "The orchestra played a beautiful symphony last night.",
    "Our team finished the project two weeks ahead of schedule.",
    "She opened the window and listened to the birds singing.",
    "The museum is open every day except Monday.",
    "A good cup of coffee makes the morning much better.",
    "The train to the city leaves from platform number three.",
    "He spent the whole afternoon reading in the garden.",
    "The children built a sandcastle on the beach.",
    "Fresh vegetables are sold at the market on Saturday.",
    "The library has thousands of books about history and science.",
    "We watched the sunset from the top of the hill.",
    "The doctor said that I should drink more water.",
    "Television news reported heavy rain in the north.",
    "My grandmother makes the best apple pie in town.",
    "The company announced a new product at the conference.",
    "Please turn off the lights when you leave the room.",
    "The cat slept on the warm blanket near the fire.",
    "Students must submit their essays before the end of the week.",
    "The river flows gently through the green valley.",
    "Thank you for watching, and see you next time.",
)


class SpeechUnavailableError(RuntimeError):
    """espeak-ng is not installed."""


@dataclass(frozen=True)
class Clip:
    wav: bytes  # 16-bit mono WAV
    text: str  # what is spoken
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return wav_duration(self.wav)


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def synthesize(text: str, voice: str = DEFAULT_VOICE, speed: int = DEFAULT_SPEED, rate: int = ESPEAK_RATE) -> Clip:
    """espeak-ng speaking `text`, as WAV bytes at `rate` Hz."""
    if not espeak_available():
        raise SpeechUnavailableError(f"`{ESPEAK}` is not on PATH; install the espeak-ng package")
    if not text.strip():
        raise ValueError("synthesize: text is empty; give at least one word")
    # A file, not --stdout: on a pipe espeak-ng cannot seek back to write the real length
    # into the WAV header.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(speed), "-w", str(path), text], capture_output=True, check=True, timeout=300
        )
        wav = path.read_bytes()
    if rate != ESPEAK_RATE:
        wav = transcode(wav, "wav", rate)
    return Clip(wav=wav, text=text, sample_rate=rate)


def long_clip(min_seconds: float = 60.0, rate: int = ESPEAK_RATE) -> Clip:
    """One clip of at least `min_seconds`, the sentence list read in order (repeated if needed)."""
    sentences: list[str] = []
    clip = None
    while clip is None or clip.duration_s < min_seconds:
        sentences += SENTENCES
        clip = synthesize(" ".join(sentences), rate=rate)
    return clip


def wav_duration(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as reader:
        return reader.getnframes() / reader.getframerate()


def pcm16_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono float samples in [-1, 1] -> 16-bit WAV bytes."""
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.tobytes())
    return buffer.getvalue()


# container -> (codec, sample format, rates the codec accepts or None for any)
_CODECS = {
    "wav": ("pcm_s16le", "s16", None),
    "flac": ("flac", "s16", None),
    # FFmpeg's own Vorbis encoder (no libvorbis here) wants float planar stereo input.
    "ogg": ("vorbis", "fltp", None),
}


def transcode(data: bytes, container: str, rate: int | None = None) -> bytes:
    """Re-encode any audio FFmpeg reads as `container` ("wav", "flac", "ogg"), optionally resampled."""
    import av

    if container not in _CODECS:
        raise ValueError(f"transcode: container={container!r}; allowed: {', '.join(_CODECS)}")
    codec, sample_format, _ = _CODECS[container]
    layout = "stereo" if codec == "vorbis" else "mono"
    out_buffer = io.BytesIO()
    with av.open(io.BytesIO(data)) as source, av.open(out_buffer, "w", format=container) as target:
        in_stream = source.streams.audio[0]
        out_rate = rate or in_stream.rate
        stream = target.add_stream(codec, rate=out_rate)
        stream.layout = layout
        stream.format = sample_format
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=out_rate)
        for frame in source.decode(in_stream):
            for converted in resampler.resample(frame):
                target.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            target.mux(stream.encode(converted))
        target.mux(stream.encode(None))
    return out_buffer.getvalue()


def decode_16k(data: bytes) -> np.ndarray:
    """Reference decoding: mono float32 at 16 kHz through FFmpeg's swresample."""
    import av

    chunks = []
    with av.open(io.BytesIO(data)) as source:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
        for frame in source.decode(source.streams.audio[0]):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
