"""The `transcribe` routes on a real tritonserver: Whisper tiny.en, FP32 and INT8.

- served FP32 equals the PyTorch reference (export/whisper/reference.py) token for token,
  on the same log-mel (taken from the served `audio_features`);
- a clip over 60 s comes back as segments whose times increase and cover the clip, in
  both modes (batched: VAD chunks, the default; sequential: Whisper's seek), and the
  batched output validates as SRT and WebVTT;
- batched mode's word error rate stays within `BATCHED_MAX_WER_DELTA` of sequential's;
- INT8's word error rate stays within `INT8_MAX_WER_DELTA` of FP32's;
- per-clip errors (empty bytes, non-audio bytes, over the duration limit) leave the
  other clips of the request transcribed, and the server keeps serving.
"""

from __future__ import annotations

import numpy as np
import pytest

from export.whisper.reference import clip_tokens, transcribe_mel
from marquee.specs.whisper import BATCHED_MAX_WER_DELTA, INT8_MAX_WER_DELTA
from marquee.transcription.wer import word_error_rate
from tests.fixtures_whisper import SHORT_LIMIT_ROUTE, SHORT_LIMIT_S, silence_wav, transcribe

pytestmark = pytest.mark.integration

SHORT_TEXT = "The weather today is sunny with a light breeze from the west. Please remember your passport."
# Whisper tiny.en on espeak-ng's voice (measured about 0.1 on the long clip): a bound
# that still catches lost windows, bad stitching or a wrong mel.
MAX_WER = 0.3


def _served_mel(client, wav: bytes) -> tuple[np.ndarray, int]:
    import tritonclient.grpc as grpcclient

    data = np.frombuffer(wav, np.uint8)[None]
    tensor = grpcclient.InferInput("audio", list(data.shape), "UINT8")
    tensor.set_data_from_numpy(data)
    result = client.infer("audio_features", [tensor], client_timeout=60)
    return result.as_numpy("mel")[0], int(result.as_numpy("num_samples").reshape(-1)[0])


def _text(result: dict) -> str:
    return " ".join(segment["text"] for segment in result["segments"])


@pytest.fixture(scope="module")
def long_results(transcribe_triton, espeak_clips):
    """The long clip through both routes (transcribed once for the module)."""
    import tritonclient.grpc as grpcclient

    clip = espeak_clips.long()
    with grpcclient.InferenceServerClient(transcribe_triton.grpc_url) as client:
        results = {route: transcribe(client, [clip.wav], model=route)[0] for route in ("transcribe", "transcribe_int8")}
        results["sequential"] = transcribe(client, [clip.wav], mode="sequential")[0]
    return clip, results


def test_served_fp32_equals_pytorch_reference_token_for_token(transcribe_client, whisper_torch, espeak_clips):
    model, rules = whisper_torch
    clip = espeak_clips.get(SHORT_TEXT)
    mel, num_samples = _served_mel(transcribe_client, clip.wav)
    reference_segments, _ = transcribe_mel(model, mel, num_samples, rules)
    (served,) = transcribe(transcribe_client, [clip.wav])
    served_tokens = [t for segment in served["segments"] for t in segment["tokens"]]
    assert served_tokens == clip_tokens(reference_segments)
    assert [(s["start"], s["end"]) for s in served["segments"]] == [
        (round(s.start, 3), round(s.end, 3)) for s in reference_segments
    ]
    assert word_error_rate(clip.text, _text(served)).wer <= MAX_WER


@pytest.mark.parametrize("mode", ["transcribe", "sequential"])
def test_long_clip_segments_increase_and_cover_the_clip(long_results, mode):
    clip, results = long_results
    result = results[mode]
    assert result["mode"] == ("batched" if mode == "transcribe" else "sequential")
    assert clip.duration_s > 60
    assert result["duration_s"] == pytest.approx(clip.duration_s, abs=0.01)
    segments = result["segments"]
    starts = [s["start"] for s in segments]
    ends = [s["end"] for s in segments]
    assert starts == sorted(starts) and all(s < e for s, e in zip(starts, ends, strict=True))
    assert all(e <= n for e, n in zip(ends, starts[1:], strict=False)), "segments overlap"
    assert starts[0] < 1.5 and ends[-1] > clip.duration_s - 3.0
    gaps = [n - e for e, n in zip(ends, starts[1:], strict=False)]
    assert max(gaps) < 3.0, f"a {max(gaps):.1f} s hole in the transcript"
    assert word_error_rate(clip.text, _text(result)).wer <= MAX_WER


def test_batched_output_validates_as_srt_and_vtt_covering_the_speech(long_results):
    from clients.transcription import Segment
    from marquee.transcription.subtitles import coverage_problems, parse_srt, parse_vtt, to_srt, to_vtt

    clip, results = long_results
    segments = [Segment(s["start"], s["end"], s["text"]) for s in results["transcribe"]["segments"]]
    for cues in (parse_srt(to_srt(segments)), parse_vtt(to_vtt(segments))):  # strict: times must increase
        assert len(cues) == len(segments) > 10
        assert coverage_problems(cues, clip.duration_s, max_gap_s=3.0) == []


def test_batched_word_error_rate_within_documented_delta_of_sequential(long_results):
    clip, results = long_results
    batched = word_error_rate(clip.text, _text(results["transcribe"])).wer
    sequential = word_error_rate(clip.text, _text(results["sequential"])).wer
    print(f"WER batched {batched:.3f}, sequential {sequential:.3f}")
    assert batched - sequential <= BATCHED_MAX_WER_DELTA


def test_unknown_mode_is_a_request_error_naming_the_modes(transcribe_client):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="`mode` is 'fastest'; allowed: batched, sequential"):
        transcribe(transcribe_client, [silence_wav(1.0)], mode="fastest")


def test_int8_word_error_rate_within_documented_delta_of_fp32(long_results):
    clip, results = long_results
    fp32 = word_error_rate(clip.text, _text(results["transcribe"])).wer
    int8 = word_error_rate(clip.text, _text(results["transcribe_int8"])).wer
    print(f"WER fp32 {fp32:.3f}, int8 {int8:.3f}")
    assert int8 - fp32 <= INT8_MAX_WER_DELTA
    assert results["transcribe_int8"]["model"] == "transcribe_int8"


def test_bad_clips_get_their_own_errors_and_the_rest_is_transcribed(transcribe_client, espeak_clips):
    good = espeak_clips.get("The museum is open every day except Monday.")
    silence = silence_wav(65.0)  # three windows, where Whisper alone would "hear" a word
    results = transcribe(transcribe_client, [b"", good.wav, b"this is not an audio file", silence])
    assert "empty" in results[0]["error"] and "clip 0" in results[0]["error"]
    assert "clip 2" in results[2]["error"] and "audio" in results[2]["error"]
    assert word_error_rate(good.text, _text(results[1])).wer <= MAX_WER
    assert results[3]["segments"] == [] and results[3]["duration_s"] == pytest.approx(65.0)
    # The server still answers normally afterwards.
    (again,) = transcribe(transcribe_client, [good.wav])
    assert again["segments"] == results[1]["segments"]


def test_clip_over_the_duration_limit_is_refused_naming_the_limit(transcribe_client, espeak_clips):
    short = espeak_clips.get("Yes.")
    long = espeak_clips.get(SHORT_TEXT)
    assert long.duration_s > SHORT_LIMIT_S > short.duration_s
    results = transcribe(transcribe_client, [long.wav, short.wav], model=SHORT_LIMIT_ROUTE)
    assert f"limit is {SHORT_LIMIT_S:.0f} s" in results[0]["error"]
    assert "error" not in results[1]


def test_too_many_clips_is_a_request_error_naming_the_limit(transcribe_client):
    from tritonclient.utils import InferenceServerException

    from marquee.specs.whisper import LIMITS

    with pytest.raises(InferenceServerException, match=f"at most {LIMITS.max_clips} per request"):
        transcribe(transcribe_client, [b"x"] * (LIMITS.max_clips + 1))
    (after,) = transcribe(transcribe_client, [silence_wav(1.0)])
    assert after["segments"] == []


def test_clips_batched_in_one_request_or_concurrent_requests_match_one_by_one(transcribe_triton, espeak_clips):
    """Lockstep decoding (windows leaving the batch at different steps) and the encoder's
    dynamic batching must not change any clip's transcript."""
    from concurrent.futures import ThreadPoolExecutor

    import tritonclient.grpc as grpcclient

    texts = (
        "Yes.",
        "The children built a sandcastle on the beach.",
        "The orchestra played a beautiful symphony last night. Our team finished the project early.",
    )
    clips = [espeak_clips.get(text).wav for text in texts]

    def one_request(batch: list[bytes]) -> list[dict]:
        with grpcclient.InferenceServerClient(transcribe_triton.grpc_url) as client:
            return transcribe(client, batch)

    alone = [one_request([clip])[0]["segments"] for clip in clips]
    together = [result["segments"] for result in one_request(clips)]
    with ThreadPoolExecutor(3) as pool:
        concurrent = [result[0]["segments"] for result in pool.map(one_request, [[clip] for clip in clips])]
    assert together == alone
    assert concurrent == alone
