"""Pure steps of the text moderation cascade: item validation, which texts go to stage 2,
and the decision + audit record of each text.

No Triton, no models: the route (`model.py`) calls the models and hands their scores
here, and unit tests drive these functions directly. `decide` and the policy come from
the caller (the policy module is copied next to this one in the version directory).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

try:  # in the route's version directory, policy.py sits next to this module
    from policy import ERROR, ERROR_KINDS, INPUT_ERROR, MODEL_ERROR  # noqa: F401 - model.py imports them here
except ImportError:  # imported from the source tree (unit tests)
    from marquee.moderation.policy import ERROR, ERROR_KINDS, INPUT_ERROR, MODEL_ERROR  # noqa: F401

LEXICAL_CATEGORY = "profanity"
CLEAN_CLASS = "clean"  # the classifier's "nothing wrong" class: reported, never a reason
# 1 - P(clean): the classifier's whole harm mass. Comments that mix kinds of harm, or
# whose harm the head spreads over two classes, reach it when no single class would
# (measured on the natural set: precision 0.94 at recall 0.95 ranked by it, 0.87 by the
# strongest single class; perf/reports/moderation_natural_quality.json).
HARMFUL_CATEGORY = "harmful"


class ItemError(ValueError):
    """One text cannot be judged; it gets decision "error", its siblings carry on."""


@dataclass(frozen=True)
class StageRun:
    """One stage's batched model call: which model, and how long the call took."""

    model: str
    version: int
    ms: float


@dataclass
class Batch:
    """The valid texts of a request (by position in the request) and the rejected ones."""

    size: int
    texts: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def valid_indices(self) -> list[int]:
        return sorted(self.texts)


def check_text(raw: object, index: int, max_chars: int) -> str:
    """The text as str, or ItemError naming the item, the problem and what is allowed."""
    if isinstance(raw, bytes | bytearray | np.bytes_):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as error:
            found = bytes(raw)[error.start : error.start + 4]
            raise ItemError(
                f"text[{index}] is not valid UTF-8 (at byte {error.start}: {found!r}); allowed: UTF-8 encoded text"
            ) from None
    elif isinstance(raw, str):
        text = raw
    else:
        raise ItemError(f"text[{index}] is {type(raw).__name__}; allowed: UTF-8 bytes")
    if not text:
        raise ItemError(f"text[{index}] is empty; allowed: 1 to {max_chars} characters")
    if not text.strip():
        raise ItemError(f"text[{index}] is only whitespace ({len(text)} characters); allowed: visible text")
    if len(text) > max_chars:
        raise ItemError(f"text[{index}] has {len(text)} characters; allowed: 1 to {max_chars}")
    return text


def read_batch(items: Sequence[object], max_chars: int) -> Batch:
    batch = Batch(size=len(items))
    for index, raw in enumerate(items):
        try:
            batch.texts[index] = check_text(raw, index, max_chars)
        except ItemError as error:
            batch.errors[index] = str(error)
    return batch


def ambiguous(profanity: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Which lexical scores lie inside the inclusive band where stage 2 must decide."""
    low, high = band
    return (profanity >= low) & (profanity <= high)


def class_scores(probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    if len(probabilities) != len(classes):
        raise ValueError(f"classifier returned {len(probabilities)} probabilities for {len(classes)} classes")
    return {name: round(float(p), 6) for name, p in zip(classes, probabilities, strict=True)}


def decision_scores(profanity: float, probabilities: dict[str, float] | None) -> dict[str, float]:
    """What the policy decides on: the lexical score, and when stage 2 ran every class but
    `clean` plus `harmful` (1 - P(clean))."""
    scores = {LEXICAL_CATEGORY: round(float(profanity), 6)}
    if probabilities is not None:
        scores.update({name: p for name, p in probabilities.items() if name != CLEAN_CLASS})
        if CLEAN_CLASS in probabilities:
            scores[HARMFUL_CATEGORY] = round(1.0 - probabilities[CLEAN_CLASS], 6)
    return scores


def _thresholds_json(thresholds: dict) -> dict[str, dict[str, float]]:
    return {name: {"review": t.review, "block": t.block} for name, t in thresholds.items()}


def judge(
    profanity: float,
    probabilities: dict[str, float] | None,
    lexical: StageRun,
    classifier: StageRun | None,
    policy,
    decide: Callable,
) -> tuple[str, dict]:
    """Decision and audit of one text from its stage scores.

    Decision scores: see `decision_scores` (the stage record still shows `clean`).
    """
    ran_stage2 = probabilities is not None and classifier is not None
    scores = decision_scores(profanity, probabilities if ran_stage2 else None)
    stages = [
        {
            "model": lexical.model,
            "version": lexical.version,
            "scores": {LEXICAL_CATEGORY: scores[LEXICAL_CATEGORY]},
            "ms": round(lexical.ms, 3),
        }
    ]
    if ran_stage2:
        stages.append(
            {
                "model": classifier.model,
                "version": classifier.version,
                "scores": probabilities,
                "ms": round(classifier.ms, 3),
            }
        )
    verdict = decide(scores, policy.text.categories)
    audit = {
        "decision": verdict.decision,
        "scores": scores,
        "thresholds": _thresholds_json(policy.text.categories),
        "ambiguous_band": list(policy.text.ambiguous_band),
        "stages": stages,
        "policy_version": policy.version,
        "policy_sha256": policy.sha256,
        "reasons": list(verdict.reasons),
    }
    return verdict.decision, audit


def error_audit(message: str, policy, kind: str) -> dict:
    """The audit of a text that could not be judged. `kind` tells the queue what to do:
    "input" (the text itself is unusable: quarantine it now) or "model" (a model failed,
    ran late or is not loaded: retry later)."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"error kind {kind!r}; allowed: {', '.join(ERROR_KINDS)}")
    return {
        "decision": ERROR,
        "error": message,
        "error_kind": kind,
        "scores": {},
        "stages": [],
        "policy_version": policy.version,
        "policy_sha256": policy.sha256,
        "reasons": [],
    }


def encode_outputs(results: list[tuple[str, dict]]) -> tuple[np.ndarray, np.ndarray]:
    """(decision, audit) as Triton BYTES tensors, one element per text."""
    decisions = np.array([decision.encode() for decision, _ in results], dtype=np.object_)
    audits = np.array(
        [json.dumps(audit, sort_keys=True, ensure_ascii=False).encode() for _, audit in results], dtype=np.object_
    )
    return decisions, audits
