"""export_audio_features: validated, stamped, skipped when nothing changed."""

from __future__ import annotations

from export import artifacts
from export.audio import export_audio_features
from export.audio.pipeline import CPU_PIPELINE, version_dir
from marquee.specs.audio import AUDIO_FEATURES


def test_export_validates_records_figures_and_is_cached(tmp_path):
    assert export_audio_features(tmp_path) is True
    target = version_dir(tmp_path)
    assert (target / "model.dali").is_file() and (target / CPU_PIPELINE).is_file()
    figures = artifacts.read_stamp(target)["validation"]
    for name in ("wav_16k", "wav_44k", "flac_44k", "ogg_44k"):
        assert figures[f"{name}_mel_max_abs_diff"] <= AUDIO_FEATURES.tolerance.atol
        assert figures[f"{name}_num_samples_mismatch"] == 0
        assert f"{name}_mel_vs_ffmpeg_resampled_mean_abs_diff" in figures
    # No resampling at 16 kHz: FFmpeg's decoding gives the same mel.
    assert figures["wav_16k_mel_vs_ffmpeg_resampled_max_abs_diff"] <= AUDIO_FEATURES.tolerance.atol
    assert export_audio_features(tmp_path) is False
    assert export_audio_features(tmp_path, force=True) is True
