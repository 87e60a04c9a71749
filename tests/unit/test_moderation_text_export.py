"""The exported text models agree with their framework references; export is cached."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from export.moderation import lexical, text_classifier
from export.moderation.text_dataset import build_dataset
from export.moderation.text_pipeline import export_text_moderation, load_classifier
from marquee import render
from marquee.paths import model_repository
from marquee.specs.moderation_text import (
    PROFANITY_LEXICAL,
    TEXT_CLASSIFIER_FP32,
    TEXT_CLASSIFIER_INT8,
    TEXT_MODERATION_MODELS,
)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [e.text for e in build_dataset().test[:48]] + ["Ünïcödé naïve café", "ДУРАК идиот", "x"]


def _onnx(repository, spec) -> str:
    return str(repository / spec.name / str(spec.version) / spec.artifact)


def test_lexical_onnx_matches_scikit_learn(text_moderation_repository, texts):
    session = ort.InferenceSession(_onnx(text_moderation_repository, PROFANITY_LEXICAL))
    served = session.run(None, {"text": np.array(texts, dtype=object)[:, None]})[0][:, 0]
    np.testing.assert_allclose(served, lexical.reference_scores(texts), atol=PROFANITY_LEXICAL.tolerance.atol)


def test_classifier_onnx_matches_pytorch_within_the_spec_tolerances(text_moderation_repository, texts):
    reference = text_classifier.run_batched(load_classifier(text_moderation_repository), texts)
    fp32 = text_classifier.onnx_probabilities(_onnx(text_moderation_repository, TEXT_CLASSIFIER_FP32), texts)
    np.testing.assert_allclose(fp32, reference, atol=TEXT_CLASSIFIER_FP32.tolerance.atol)
    int8 = text_classifier.onnx_probabilities(_onnx(text_moderation_repository, TEXT_CLASSIFIER_INT8), texts)
    tolerance = TEXT_CLASSIFIER_INT8.tolerance
    assert np.abs(int8 - reference).max() <= tolerance.atol
    assert np.abs(int8 - reference).mean() <= tolerance.mean_atol
    assert (int8.argmax(1) == reference.argmax(1)).mean() >= tolerance.min_recall


def test_second_export_with_unchanged_inputs_is_skipped(text_moderation_repository):
    assert export_text_moderation(text_moderation_repository) is False


def test_committed_configs_match_the_specs():
    assert render.stale(list(TEXT_MODERATION_MODELS), model_repository()) == []
