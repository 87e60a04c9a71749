"""`marquee moderation train LABELS.tsv`: the classification head retrained on a
platform's own labelled comments, checked on a held-out part of them, and exported as
the next Triton version of both classifier models, next to the version in service.

The encoder in service (fine-tuned at export) stays frozen: only the 384 -> 5 head is
refitted, as a logistic regression (seconds, where fine-tuning again takes minutes), on
the platform's training part plus, by default, the set the shipped head was trained on
(`training_set.py`: the generated set and the natural `dev` comments), so a few hundred
labels adapt the head rather than replace what it knew. Each platform comment weighs
as much as a real comment there (`REAL_COMMENT_WEIGHT` generated texts). A seeded,
stratified share of the platform's items is held out; the report compares the head in service and the new one
on it. The new version is not served until a rollout loads it: the rendered configs
name the spec's version only, and a policy that names `text.classifier_version: N`
(written next to the export) switches the route over through the policy's shadow,
promote and rollback.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from export.moderation import text_classifier, text_dataset, text_pipeline, training_set
from export.moderation.text_quality import stage2_quality
from export.validate import ValidationReport
from marquee.moderation.labels import LabelledItem
from marquee.specs.moderation_text import TEXT_CLASSES, TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8

log = logging.getLogger(__name__)
HELD_OUT_SHARE = 0.25


@dataclass(frozen=True)
class RetrainResult:
    version: int
    in_service_version: int
    train_items: int
    held_out_items: int
    in_service: dict  # stage-2 quality of the head in service on the held-out items
    retrained: dict  # the same for the new head
    policy_path: Path


def split_items(items: list[LabelledItem], seed: int, share: float = HELD_OUT_SHARE):
    """(train, held_out): a seeded `share` of each label's items held out (at least one
    when a label has two or more)."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in TEXT_CLASSES:
        mine = [i for i in items if i.label == label]
        order = rng.permutation(len(mine))
        count = max(1, round(len(mine) * share)) if len(mine) >= 2 else 0
        held += [mine[k] for k in order[:count]]
        train += [mine[k] for k in order[count:]]
    return train, held


def versions(repository: Path, model: str) -> list[int]:
    folder = repository / model
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []


def retrain(
    repository: Path,
    items: list[LabelledItem],
    active_policy: Path,
    in_service_version: int,
    with_generated: bool = True,
    seed: int = text_dataset.DEFAULT_SEED,
) -> RetrainResult:
    missing = [i.line for i in items if i.text is None]
    if missing:
        raise ValueError(f"train needs a `text` column; lines {missing[:5]} have none")
    train, held_out = split_items(items, seed)
    start = training_set.shipped_training_set(seed) if with_generated else training_set.TrainingSet([], [], np.ones(0))
    data = start.plus_real([i.text for i in train], [i.label for i in train])
    classifier = text_pipeline.load_classifier(repository, in_service_version)
    held_texts, held_labels = [i.text for i in held_out], [i.label for i in held_out]
    in_service = _quality(classifier, held_texts, held_labels)
    embeddings = text_classifier.run_batched(classifier, data.texts, method="embed")
    classifier.set_head(*text_classifier.train_head(embeddings, data.labels, seed, data.weights))
    retrained = _quality(classifier, held_texts, held_labels)

    version = max(versions(repository, TEXT_CLASSIFIER_FP32.name) + versions(repository, TEXT_CLASSIFIER_INT8.name)) + 1
    _export_version(repository, classifier, version, held_texts or data.texts[:64])
    policy_path = _candidate_policy(repository, active_policy, version)
    return RetrainResult(version, in_service_version, len(train), len(held_out), in_service, retrained, policy_path)


def _quality(classifier, texts: list[str], labels: list[str]) -> dict:
    predicted = [TEXT_CLASSES[k] for k in text_classifier.run_batched(classifier, texts).argmax(1)]
    return stage2_quality(labels, predicted)


def _export_version(repository: Path, classifier, version: int, check_texts: list[str]) -> None:
    """FP32 and INT8 graphs as version `version`, each checked against PyTorch first."""
    report = ValidationReport(f"retrained text classifier v{version}")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        text_classifier.export_checked(classifier, staged, check_texts, report)
        log.info("%s", report.summary())
        report.raise_if_failed()
        weights = text_classifier.save_classifier(classifier, staged / text_classifier.CLASSIFIER_FILE)
        stamp = {"input_hash": f"retrained-v{version}", "validation": report.figures}
        text_pipeline.install_classifier(staged, weights, repository, version, stamp)


def _candidate_policy(repository: Path, active_policy: Path, version: int) -> Path:
    """The policy in force, naming the new classifier version: shadow it, then promote."""
    raw = yaml.safe_load(Path(active_policy).read_bytes())
    raw["version"] = f"{raw['version']}+classifier-v{version}"
    raw["text"]["classifier_version"] = version
    path = repository / TEXT_CLASSIFIER_FP32.name / str(version) / "candidate_policy.yaml"
    path.write_text(
        f"# The policy in force when classifier v{version} was trained, switched to it.\n"
        + yaml.safe_dump(raw, sort_keys=False)
    )
    return path
