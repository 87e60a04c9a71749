"""Precision and recall of the text moderation cascade and of stage 2 alone, on the
held-out templates of the labelled set (see text_dataset.py).

Two views, because the cascade and the classifier answer different questions:
- the cascade gives a decision per text: "flagged" (review or block) vs "allow". Per
  category we report recall (share of that category flagged) and, for clean text, the
  false-flag rate; overall, precision/recall of flagged vs "label is not clean", and of
  block alone;
- stage 2 gives a class per text (argmax): precision/recall per class.
"""

from __future__ import annotations

from collections.abc import Sequence

from marquee.specs.moderation_text import TEXT_CLASSES

CLEAN = "clean"


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def binary_precision_recall(truth: Sequence[bool], predicted: Sequence[bool]) -> dict:
    true_positive = sum(t and p for t, p in zip(truth, predicted, strict=True))
    return {
        "precision": _ratio(true_positive, sum(predicted)),
        "recall": _ratio(true_positive, sum(truth)),
        "support": sum(truth),
    }


def class_precision_recall(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, dict]:
    return {
        name: binary_precision_recall([label == name for label in labels], [p == name for p in predicted])
        for name in TEXT_CLASSES
    }


def cascade_quality(labels: Sequence[str], decisions: Sequence[str], stage_counts: Sequence[int]) -> dict:
    harmful = [label != CLEAN for label in labels]
    flagged = [d in ("review", "block") for d in decisions]
    per_category = {}
    for name in TEXT_CLASSES:
        rows = [i for i, label in enumerate(labels) if label == name]
        share_flagged = _ratio(sum(flagged[i] for i in rows), len(rows))
        per_category[name] = {
            ("false_flag_rate" if name == CLEAN else "recall_flagged"): share_flagged,
            "reached_stage2": _ratio(sum(stage_counts[i] == 2 for i in rows), len(rows)),
            "support": len(rows),
        }
    return {
        "flagged_vs_allow": binary_precision_recall(harmful, flagged),
        "block_vs_rest": binary_precision_recall(harmful, [d == "block" for d in decisions]),
        "errors": sum(d == "error" for d in decisions),
        "per_category": per_category,
        "share_reaching_stage2": _ratio(sum(c == 2 for c in stage_counts), len(stage_counts)),
    }


def stage2_quality(labels: Sequence[str], predicted: Sequence[str]) -> dict:
    harmful = [label != CLEAN for label in labels]
    return {
        "accuracy": _ratio(sum(p == label for p, label in zip(predicted, labels, strict=True)), len(labels)),
        "per_class": class_precision_recall(labels, predicted),
        "harmful_vs_clean": binary_precision_recall(harmful, [p != CLEAN for p in predicted]),
    }
