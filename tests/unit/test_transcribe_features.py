"""The route's window-by-window log-mel against transformers' WhisperFeatureExtractor
(openai-whisper's whole-clip log-mel), and its bounded-memory promises."""

from __future__ import annotations

import numpy as np
import pytest

from marquee.preprocess.audio import reference_log_mel
from marquee.routes.transcribe import features
from marquee.specs.audio import MEL_TOLERANCE


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(int(41.3 * 16_000)) / 16_000  # over one window, not a whole number of hops
    tone = np.sin(2 * np.pi * (180 + 40 * np.sin(t)) * t) * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)
    return (0.3 * tone + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def test_whole_clip_frames_equal_whisper_reference(signal):
    reference = reference_log_mel(signal)
    mel = features.ClipMel(signal)
    ours = mel.window(0, mel.frames)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= MEL_TOLERANCE.atol
    assert np.abs(ours - reference).mean() <= MEL_TOLERANCE.mean_atol


def test_a_window_computed_alone_equals_the_same_frames_of_the_whole_clip(signal):
    mel = features.ClipMel(signal)
    whole = mel.window(0, mel.frames)
    for first in (0, 1, 2999, 3000, 3517):  # the reflected start, block edges, the padded end
        np.testing.assert_allclose(mel.window(first, 3000), whole[:, first : first + 3000], atol=1e-6)


def test_chunk_is_normalised_as_its_own_padded_clip(signal):
    chunk = signal[16_000 * 5 : 16_000 * 20]
    reference = reference_log_mel(chunk)
    content = chunk.size // features.HOP
    window = features.chunk_mel(chunk)
    assert window.shape == (80, 3000)
    assert np.abs(window[:, :content] - reference[:, :content]).max() <= MEL_TOLERANCE.atol
    assert not window[:, content:].any()  # zero padding in normalised space, as Whisper pads


def test_slaney_filters_have_unit_area_in_hertz():
    filters = features.mel_filters().astype(np.float64)
    hz_per_bin = 8000 / 200
    areas = filters.sum(axis=1) * hz_per_bin
    # Each triangle is scaled to area 1 in its continuous form (2 / width); on the FFT grid
    # the narrow low-frequency triangles are sampled coarsely.
    assert np.all(filters >= 0) and np.all(filters.max(axis=1) > 0)
    assert np.median(areas) == pytest.approx(1.0, abs=0.05)
