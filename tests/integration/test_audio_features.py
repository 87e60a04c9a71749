"""`audio_features` (DALI log-mel) on a real tritonserver: espeak speech in WAV 16 kHz,
WAV 44.1 kHz, FLAC and OGG against Whisper's reference log-mel; bad files get a clear
per-request error and the server keeps serving."""

from __future__ import annotations

import io
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from marquee.preprocess import audio as preprocess
from marquee.specs.audio import AUDIO_FEATURES
from marquee.transcription import speech

pytestmark = pytest.mark.integration

FORMATS = (("wav", 16_000), ("wav", 44_100), ("flac", None), ("ogg", None))


def features(server, data: bytes) -> tuple[np.ndarray, int]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput("audio", [1, len(data)], "UINT8")
    tensor.set_data_from_numpy(np.frombuffer(data, np.uint8)[None])
    result = client.infer(AUDIO_FEATURES.name, [tensor], client_timeout=120)
    return result.as_numpy("mel")[0], int(result.as_numpy("num_samples")[0, 0])


def dali_decoded(data: bytes) -> np.ndarray:
    decoder = preprocess.decoder_pipeline()
    decoder.build()
    return np.array(decoder.run(audio=[np.frombuffer(data, np.uint8)])[0][0])


@pytest.mark.parametrize(("container", "rate"), FORMATS, ids=[f"{c}-{r or 'native'}" for c, r in FORMATS])
def test_mel_matches_whisper_reference_on_the_decoded_samples(audio_server_alive, speech_clip, container, rate):
    data = speech.transcode(speech_clip.wav, container, rate)
    mel, num_samples = features(audio_server_alive, data)
    samples = dali_decoded(data)
    assert num_samples == samples.size
    assert abs(num_samples / 16_000 - speech_clip.duration_s) < 0.05  # resampled, not truncated
    assert mel.shape == (80, num_samples // 160 + preprocess.PAD_FRAMES)
    reference = preprocess.reference_log_mel(samples)
    diff = np.abs(reference - mel)
    print(f"{container}@{rate or 'native'}: max |diff| {diff.max():.2e}, mean {diff.mean():.2e}")
    assert diff.max() <= AUDIO_FEATURES.tolerance.atol
    assert diff.mean() <= AUDIO_FEATURES.tolerance.mean_atol


def test_16k_wav_matches_the_reference_decoder_too(audio_server_alive, speech_clip):
    """No resampling involved: DALI's and FFmpeg's decoders give the same samples."""
    data = speech.transcode(speech_clip.wav, "wav", 16_000)
    mel, _ = features(audio_server_alive, data)
    assert np.abs(preprocess.reference_log_mel(speech.decode_16k(data)) - mel).max() <= AUDIO_FEATURES.tolerance.atol


def test_resampling_differs_from_ffmpeg_only_slightly(audio_server_alive, speech_clip):
    """DALI's sinc resampler vs FFmpeg's swresample (what openai-whisper and faster-whisper
    use), 22.05 kHz mono speech: measured max 0.38, mean 0.006 (normalised log-mel units)."""
    mel, num_samples = features(audio_server_alive, speech_clip.wav)
    ffmpeg = preprocess.reference_log_mel(speech.decode_16k(speech_clip.wav))
    frames = preprocess.content_frames(num_samples)
    diff = np.abs(ffmpeg[:, :frames] - mel[:, :frames])
    print(f"vs FFmpeg-resampled reference: max |diff| {diff.max():.3f}, mean {diff.mean():.4f}")
    assert diff.mean() < 0.02 and diff.max() < 0.6


def test_silence_and_empty_recordings_give_the_floor(audio_server_alive):
    for samples in (np.zeros(16_000 * 2), np.zeros(0)):
        mel, num_samples = features(audio_server_alive, speech.pcm16_wav(samples, 16_000))
        assert num_samples == samples.size
        # log10(1e-10) = -10 everywhere, normalised: (-10 + 4) / 4
        assert mel.shape == (80, samples.size // 160 + preprocess.PAD_FRAMES)
        assert np.allclose(mel, -1.5)


def _header_only_wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
    return buffer.getvalue()


def test_bad_files_get_a_clear_error_and_the_server_keeps_serving(audio_server_alive, speech_clip):
    bad = {
        # Refused from the first bytes, before DALI decodes (audio_header.py).
        b"not audio" * 60: "cannot decode audio: .*not a WAV, FLAC or OGG file .*; allowed: WAV, FLAC, OGG",
        speech_clip.wav[:30]: "cannot decode audio: .*data",  # cut inside the header
        b"\x89PNG\r\n\x1a\n" + bytes(200): "cannot decode audio: .*starts with 89504e470d0a1a0a",
    }
    for data, message in bad.items():
        with pytest.raises(InferenceServerException, match=message):
            features(audio_server_alive, data)
    with pytest.raises(InferenceServerException, match="audio_features: input `audio` item 0 is empty"):
        features(audio_server_alive, b"")
    mel, num_samples = features(audio_server_alive, speech_clip.wav)
    assert num_samples > 0 and np.isfinite(mel).all()


def test_file_cut_after_the_header_decodes_the_audio_it_holds(audio_server_alive, speech_clip):
    """Like FFmpeg, the decoder reads what is there: half a WAV is half the speech."""
    _, full = features(audio_server_alive, speech_clip.wav)
    _, half = features(audio_server_alive, speech_clip.wav[: len(speech_clip.wav) // 2])
    assert abs(half - full / 2) < 16_000 * 0.01


def test_concurrent_good_and_bad_requests_fail_only_the_bad(audio_server_alive, speech_clip):
    inputs = [speech_clip.wav, b"not audio at all" * 10, speech.transcode(speech_clip.wav, "flac"), b"\x00" * 64]

    def attempt(data):
        try:
            return features(audio_server_alive, data)[1]
        except InferenceServerException as error:
            return str(error)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, inputs))
    assert isinstance(outcomes[0], int) and outcomes[0] == outcomes[2]
    assert "cannot decode audio" in outcomes[1] and "cannot decode audio" in outcomes[3]
