"""Fine-tuning (export/moderation/finetune.py) trains the encoder, not just the head, and
the exported classifier is the fine-tuned one, saved next to its graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.moderation import finetune, text_classifier
from export.moderation.text_dataset import build_dataset
from export.moderation.text_pipeline import load_classifier
from export.moderation.training_set import TrainingSet
from marquee.specs.moderation_text import TEXT_CLASSES

pytestmark = pytest.mark.slow


def _small_set(per_class: int = 16) -> TrainingSet:
    train = build_dataset().train
    rows = [e for label in TEXT_CLASSES for e in [x for x in train if x.label == label][:per_class]]
    return TrainingSet([e.text for e in rows], [e.label for e in rows], np.ones(len(rows)))


def _training_loss(model, data: TrainingSet) -> float:
    probabilities = text_classifier.run_batched(model, data.texts)
    targets = [TEXT_CLASSES.index(label) for label in data.labels]
    return float(-np.log(probabilities[np.arange(len(targets)), targets]).mean())


def test_fine_tuning_moves_the_encoder_and_lowers_the_training_loss():
    data = _small_set()
    frozen = finetune.trained_classifier(data, seed=0, epochs=0)
    start_loss = _training_loss(frozen, data)
    tuned = finetune.trained_classifier(data, seed=0, epochs=4)
    published = frozen.encoder.state_dict()
    moved = [k for k, v in tuned.encoder.state_dict().items() if not torch.equal(v, published[k])]
    assert len(moved) > 0.9 * len(published)  # every layer trained, not only the head
    assert _training_loss(tuned, data) < 0.8 * start_loss


def test_a_saved_classifier_loads_back_identical(tmp_path):
    model = finetune.trained_classifier(_small_set(4), seed=1, epochs=0)
    loaded = text_classifier.load_classifier(text_classifier.save_classifier(model, tmp_path / "c.safetensors"))
    texts = ["a quiet review of the finale", "I will find you"]
    np.testing.assert_array_equal(text_classifier.run_batched(loaded, texts), text_classifier.run_batched(model, texts))


def test_a_missing_classifier_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="re-export"):
        text_classifier.load_classifier(tmp_path / "classifier.safetensors")


def test_weights_saved_for_other_classes_are_refused(tmp_path):
    from safetensors.torch import save_file

    from marquee.errors import CheckpointError

    model = text_classifier.MiniLMClassifier(text_classifier.load_encoder())
    path = tmp_path / "classifier.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"classes": "spam,clean"})
    with pytest.raises(CheckpointError, match=r"trained for classes \('spam', 'clean'\)"):
        text_classifier.load_classifier(path)


def test_the_exported_classifier_has_a_fine_tuned_encoder(text_moderation_repository):
    exported = load_classifier(text_moderation_repository).encoder.state_dict()
    published = text_classifier.load_encoder().state_dict()
    assert exported.keys() == published.keys()
    assert not torch.equal(
        exported["encoder.layer.0.attention.self.query.weight"],
        published["encoder.layer.0.attention.self.query.weight"],
    )


def test_a_classifier_that_flags_everything_fails_the_export_quality_gate(text_moderation_repository, tmp_path):
    import shutil

    from export.moderation.text_pipeline import check_templated_quality
    from export.validate import ValidationReport
    from marquee.errors import ExportValidationError

    broken = load_classifier(text_moderation_repository)
    broken.set_head(np.zeros((len(TEXT_CLASSES), text_classifier.EMBEDDING_DIM)), np.zeros(len(TEXT_CLASSES)))
    shutil.copy(text_moderation_repository / "profanity_lexical" / "1" / "model.onnx", tmp_path / "lexical.onnx")
    text_classifier.export_classifier_onnx(broken, tmp_path / "fp32.onnx")
    text_classifier.quantize_classifier_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    report = ValidationReport("a uniform classifier")
    check_templated_quality(tmp_path, build_dataset(), report)
    # Uniform probabilities: harmful = 0.8 for every text, so every text is flagged.
    assert [c.name for c in report.failures] == ["text_moderation.templated_flagged_precision"]
    assert report.figures["text_moderation.templated_flagged_recall"] == 1.0
    with pytest.raises(ExportValidationError, match="templated_flagged_precision"):
        report.raise_if_failed()
