"""Speech probabilities -> chunks of at most 30 s cut at silence; framing for the model."""

from __future__ import annotations

import numpy as np

from marquee.routes.transcribe import vad
from marquee.routes.transcribe.vad import FRAME, SAMPLE_RATE, VadSettings, chunks_from_probs, speech_regions

FPS = SAMPLE_RATE / FRAME  # frames per second (31.25)


def probs_for(spans: list[tuple[float, float]], seconds: float) -> np.ndarray:
    probs = np.full(int(seconds * FPS), 0.05, np.float32)
    for start, end in spans:
        probs[int(start * FPS) : int(end * FPS)] = 0.9
    return probs


def test_hysteresis_keeps_a_short_dip_inside_speech():
    probs = probs_for([(1.0, 3.0), (3.05, 5.0)], 8.0)  # 50 ms dip < 160 ms of silence
    assert len(speech_regions(probs, VadSettings())) == 1


def test_chunks_cover_every_speech_region_and_last_at_most_30_s():
    spans = [(1.0 + 7 * k, 5.5 + 7 * k) for k in range(12)]  # 12 sentences over 85 s
    num_samples = 90 * SAMPLE_RATE
    chunks = chunks_from_probs(probs_for(spans, 90.0), num_samples)
    assert all(0 < c.duration_s <= 30.0 for c in chunks)
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    for start, end in spans:
        assert any(c.start_s <= start and c.start_s + c.duration_s >= end for c in chunks), (start, end)
    assert len(chunks) == 3  # packed, not one chunk per sentence


def test_speech_longer_than_30_s_is_cut_at_its_quietest_frame():
    probs = probs_for([(0.0, 70.0)], 72.0)
    probs[int(20 * FPS)] = 0.6  # the least certain frame in the search range
    chunks = chunks_from_probs(probs, 72 * SAMPLE_RATE)
    assert all(c.duration_s <= 30.0 for c in chunks)
    assert chunks[0].stop == int(20 * FPS) * FRAME
    assert chunks[-1].start_s + chunks[-1].duration_s >= 70.0


def test_silence_gives_no_chunks():
    assert chunks_from_probs(np.full(500, 0.01, np.float32), 500 * FRAME) == []


def test_each_frame_is_fed_after_the_64_samples_before_it():
    samples = np.arange(3 * FRAME + 100, dtype=np.float32)
    block = vad.model_input(samples, 1, 3)  # frames 1..3; frame 3 is zero-padded
    assert block.shape == (3, FRAME + vad.CONTEXT)
    np.testing.assert_array_equal(block[0], samples[FRAME - vad.CONTEXT : 2 * FRAME])
    assert block[2, vad.CONTEXT + 100 :].sum() == 0
    first = vad.model_input(samples, 0, 1)
    assert not first[0, : vad.CONTEXT].any()  # the clip's first frame has zeros as context
