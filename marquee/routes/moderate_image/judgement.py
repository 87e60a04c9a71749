"""Turn detector scores and OCR text verdicts into one decision per image (pure Python).

The most severe of the image verdict and the text verdict wins. Text that was found but
could not be judged (the text route is not loaded, failed, or refused a line) is never
silently allowed: the image goes to review at least.
"""

from __future__ import annotations

from dataclasses import dataclass, field

try:  # in the route's version directory, policy.py sits next to this module
    from policy import DECISIONS, ERROR, ERROR_KINDS, Policy, decide, most_severe
except ImportError:  # imported from the source tree (unit tests)
    from marquee.moderation.policy import DECISIONS, ERROR, ERROR_KINDS, Policy, decide, most_severe


@dataclass
class TextJudgement:
    """What the text route said about one image's recognised lines."""

    decisions: list[str] = field(default_factory=list)
    audits: list[dict] = field(default_factory=list)
    unjudged_reason: str | None = None  # set when the lines could not be judged


def judge_text(lines: list[str], judgement: TextJudgement | None) -> tuple[str, list[str]]:
    """(decision, reasons) for an image's OCR text; "allow" when there is no text."""
    if not lines:
        return "allow", []
    if judgement is None or judgement.unjudged_reason:
        reason = judgement.unjudged_reason if judgement else "text route not called"
        return "review", [f"ocr_text_not_judged: {reason}"]
    reasons = []
    worst = most_severe([d for d in judgement.decisions if d in DECISIONS])
    for text, decision, audit in zip(lines, judgement.decisions, judgement.audits, strict=True):
        if decision == ERROR:
            worst = most_severe([worst, "review"])
            reasons.append(f"ocr_text_not_judged: line {text!r}: {audit.get('error', 'error')}")
        elif decision != "allow":
            reasons.append(f"ocr_text {decision}: {text!r} ({'; '.join(audit.get('reasons', []))})")
    return worst, reasons


def judge_image(label_scores: dict[str, float], policy: Policy) -> tuple[str, list[str]]:
    verdict = decide(label_scores, policy.image.labels)
    return verdict.decision, list(verdict.reasons)


def final_decision(image: tuple[str, list[str]], text: tuple[str, list[str]]) -> tuple[str, list[str]]:
    return most_severe([image[0], text[0]]), image[1] + text[1]


def thresholds_json(policy: Policy) -> dict:
    return {name: {"review": t.review, "block": t.block} for name, t in policy.image.labels.items()}


def error_audit(message: str, policy: Policy, kind: str) -> dict:
    """The audit of an image that could not be judged; `kind` is "input" (the image itself
    is unusable: quarantine it) or "model" (a model failed, ran late or is missing: retry)."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"error kind {kind!r}; allowed: {', '.join(ERROR_KINDS)}")
    return {
        "decision": ERROR,
        "error": message,
        "error_kind": kind,
        "policy_version": policy.version,
        "policy_sha256": policy.sha256,
    }
