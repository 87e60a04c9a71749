"""The text cascade run in-process on exported ONNX graphs, for quality measurement.

Same steps as the served route (`marquee/routes/moderate_text`): the lexical score for
every text, the classifier for texts inside the policy's ambiguous band, and the
policy's `decide` on the lexical score plus every non-clean class. Used to measure many
texts and many policies quickly; the served route's decisions on the same scores are
identical because both call `cascade.judge`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marquee.moderation.policy import Policy, decide
from marquee.routes.moderate_text.cascade import StageRun, ambiguous, class_scores, judge
from marquee.specs.moderation_text import TEXT_CLASSES


@dataclass(frozen=True)
class ScoredTexts:
    """Stage scores of every text: lexical [n] and classifier probabilities [n, classes]."""

    profanity: np.ndarray
    probabilities: np.ndarray
    extra: dict[str, np.ndarray] | None = None  # more per-text signals, name -> [n]


def lexical_scores(model_path: Path, texts: list[str]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    tensor = np.array([[t] for t in texts], dtype=object)
    return session.run(["profanity"], {"text": tensor})[0].reshape(-1)


def score_texts(repository: Path, texts: list[str], classifier: str = "text_classifier_int8", version: int = 1):
    from export.moderation.text_classifier import onnx_probabilities

    profanity = lexical_scores(repository / "profanity_lexical" / "1" / "model.onnx", texts)
    probabilities = onnx_probabilities(repository / classifier / str(version) / "model.onnx", texts)
    return ScoredTexts(profanity, probabilities)


def text_scores(scored: ScoredTexts, index: int, policy: Policy) -> dict[str, float] | None:
    """The classifier's class scores for one text when the policy's band sends it to stage 2."""
    in_band = ambiguous(scored.profanity[index : index + 1], policy.text.ambiguous_band)[0]
    return class_scores(scored.probabilities[index], TEXT_CLASSES) if in_band else None


def decisions(scored: ScoredTexts, policy: Policy, decide_fn: Callable = decide) -> list[tuple[str, dict]]:
    """(decision, audit) per text, as the route would return them."""
    lexical = StageRun("profanity_lexical", 1, 0.0)
    classifier = StageRun("text_classifier", 1, 0.0)
    results = []
    for index in range(len(scored.profanity)):
        probabilities = text_scores(scored, index, policy)
        decision, audit = judge(scored.profanity[index], probabilities, lexical, classifier, policy, decide_fn)
        if scored.extra:
            extra = {name: round(float(values[index]), 6) for name, values in scored.extra.items()}
            audit["scores"].update(extra)
            verdict = decide_fn(audit["scores"], policy.text.categories)
            decision, audit["decision"], audit["reasons"] = verdict.decision, verdict.decision, verdict.reasons
        results.append((decision, audit))
    return results
