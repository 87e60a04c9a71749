"""Whisper export: transformers directories as input, validation figures, content-hash cache."""

from __future__ import annotations

import shutil

import torch

from export.whisper.convert import load_whisper
from export.whisper.pipeline import default_source, export_whisper, figures
from marquee.specs.whisper import WHISPER_DECODER_FP32, WHISPER_ENCODER_FP32


def test_transformers_directory_loads_the_same_weights(whisper_torch, tmp_path):
    model, _ = whisper_torch
    model.save_pretrained(tmp_path)
    shutil.copy2(default_source() / "tokenizer.json", tmp_path / "tokenizer.json")
    loaded, tokens = load_whisper(tmp_path)
    for (name, ours), (_, theirs) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(ours, theirs), name
    assert tokens.timestamp_begin == 50363 and not tokens.multilingual


def test_export_records_validation_within_the_specs_tolerances(whisper_repository):
    measured = figures(whisper_repository)
    assert measured["greedy_tokens_differing_fp32"] == 0.0
    assert measured["encoder_hidden_fp32_worst_share_of_tolerance"] <= 1.0
    assert measured["encoder_hidden_fp32_mean_abs_diff"] <= WHISPER_ENCODER_FP32.tolerance.mean_atol
    assert measured["decoder_logits_fp32_max_abs_diff"] <= WHISPER_DECODER_FP32.tolerance.atol
    assert measured["validation_tokens"] >= 10  # the check decoded real speech, not an empty window


def test_export_is_skipped_when_nothing_changed(whisper_repository):
    assert export_whisper(whisper_repository) is False
