"""The moderation policy: per-category thresholds that turn model scores into decisions.

Routes copy this module and the policy YAML into their version directory, so it imports
only the standard library and PyYAML. A policy is data, not code: reviewers change
thresholds without a redeploy of models, and each decision's audit names the exact
policy (version + sha256) that produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DECISIONS = ("allow", "review", "block")  # in increasing severity
# Not a policy outcome: the item could not be judged. Its audit's `error_kind` says why:
# "input" (the item itself is unusable; the queue quarantines it at once) or "model" (a
# model failed, ran past its deadline or is not loaded; the queue retries it).
ERROR = "error"
INPUT_ERROR, MODEL_ERROR = "input", "model"
ERROR_KINDS = (INPUT_ERROR, MODEL_ERROR)


class PolicyError(ValueError):
    """The policy file is malformed; the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class Thresholds:
    review: float
    block: float


@dataclass(frozen=True)
class Verdict:
    decision: str
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TextPolicy:
    ambiguous_band: tuple[float, float]
    categories: dict[str, Thresholds]
    # The stage-2 classifier version these thresholds were fitted to (a retrained head is a
    # new Triton model version); None: the route's configured version.
    classifier_version: int | None = None


@dataclass(frozen=True)
class ImagePolicy:
    labels: dict[str, Thresholds]
    ocr_min_confidence: float


@dataclass(frozen=True)
class Policy:
    version: str
    sha256: str
    text: TextPolicy
    image: ImagePolicy


def most_severe(decisions: list[str]) -> str:
    """The strictest of several decisions ("allow" when there are none)."""
    ranked = [DECISIONS.index(d) for d in decisions if d in DECISIONS]
    return DECISIONS[max(ranked)] if ranked else "allow"


def decide(scores: dict[str, float], thresholds: dict[str, Thresholds]) -> Verdict:
    """Block if any score reaches its block threshold, else review if any reaches review."""
    blocked = [
        f"{name}={scores[name]:.3f}>=block {t.block}"
        for name, t in thresholds.items()
        if name in scores and scores[name] >= t.block
    ]
    if blocked:
        return Verdict("block", blocked)
    flagged = [
        f"{name}={scores[name]:.3f}>=review {t.review}"
        for name, t in thresholds.items()
        if name in scores and scores[name] >= t.review
    ]
    return Verdict("review", flagged) if flagged else Verdict("allow", [])


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as error:
        raise PolicyError(f"cannot read moderation policy {path}: {error}") from None
    return parse_policy(raw_bytes, path)


def parse_policy(raw_bytes: bytes, path: str | Path) -> Policy:
    """A policy from the file's bytes; `path` names it in errors."""
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as error:
        raise PolicyError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: top level must be a mapping with keys version, text, image")
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PolicyError(f"{path}: `version`={version!r}; must be a non-empty string")
    text = _section(raw, "text", path)
    image = _section(raw, "image", path)
    return Policy(
        version=version,
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        text=TextPolicy(
            ambiguous_band=_band(text.get("ambiguous_band"), path),
            categories=_thresholds(text.get("categories"), "text.categories", path),
            classifier_version=_version(text.get("classifier_version"), path),
        ),
        image=ImagePolicy(
            labels=_thresholds(image.get("labels"), "image.labels", path),
            ocr_min_confidence=_probability(image.get("ocr_min_confidence"), "image.ocr_min_confidence", path),
        ),
    )


def _section(raw: dict, name: str, path: Path) -> dict:
    section = raw.get(name)
    if not isinstance(section, dict):
        raise PolicyError(f"{path}: `{name}`={section!r}; must be a mapping")
    return section


def _probability(value, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise PolicyError(f"{path}: `{where}`={value!r}; must be a number in [0, 1]")
    return float(value)


def _version(value, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{path}: `text.classifier_version`={value!r}; must be a model version number >= 1")
    return value


def _band(value, path: Path) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise PolicyError(f"{path}: `text.ambiguous_band`={value!r}; must be [low, high]")
    low = _probability(value[0], "text.ambiguous_band[0]", path)
    high = _probability(value[1], "text.ambiguous_band[1]", path)
    if low > high:
        raise PolicyError(f"{path}: `text.ambiguous_band`={value!r}; low must be <= high")
    return low, high


def _thresholds(value, where: str, path: Path) -> dict[str, Thresholds]:
    if not isinstance(value, dict) or not value:
        raise PolicyError(f"{path}: `{where}`={value!r}; must be a non-empty mapping of name -> {{review, block}}")
    result = {}
    for name, entry in value.items():
        if not isinstance(entry, dict) or set(entry) != {"review", "block"}:
            raise PolicyError(f"{path}: `{where}.{name}`={entry!r}; must have exactly the keys review and block")
        review = _probability(entry["review"], f"{where}.{name}.review", path)
        block = _probability(entry["block"], f"{where}.{name}.block", path)
        if review > block:
            raise PolicyError(f"{path}: `{where}.{name}`: review {review} must be <= block {block}")
        result[str(name)] = Thresholds(review, block)
    return result


def shadow_verdict(scores: dict[str, float], candidate: Policy | None, thresholds_of) -> dict | None:
    """A candidate policy's decision on the same scores, for the audit record only: it is
    recorded next to the decision in force and never enforced. `thresholds_of(policy)`
    picks the section (text categories or image labels). None without a candidate."""
    if candidate is None:
        return None
    verdict = decide(scores, thresholds_of(candidate))
    return shadow_record(candidate, verdict.decision, list(verdict.reasons))


def shadow_record(candidate: Policy, decision: str, reasons: list[str]) -> dict:
    """The audit's `shadow` entry: what `candidate` decided, marked as not enforced."""
    return {
        "policy_version": candidate.version,
        "policy_sha256": candidate.sha256,
        "decision": decision,
        "reasons": reasons,
        "enforced": False,
    }


def default_policy_path() -> Path:
    """The repository's policy file (only meaningful in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "policies" / "moderation.yaml"


def metric_categories(policy: Policy) -> frozenset[str]:
    """Every category a decision may be counted under in metrics: the policy's own names,
    the OCR text verdicts, the error kinds, "none" and "other". A closed set, so the
    metric's label cannot grow with what the models or users send."""
    return frozenset(
        {
            *policy.text.categories,
            *policy.image.labels,
            "ocr_text",
            "ocr_text_not_judged",
            *ERROR_KINDS,
            "none",
            "other",
        }
    )


def decision_category(decision: str, audit: dict, known: frozenset[str]) -> str:
    """The category one decision is counted under: the error kind for "error", the first
    reason's category otherwise ("insult=0.912>=block 0.85" -> "insult"), "none" when no
    threshold was reached, and "other" for a name outside `known`."""
    if decision == ERROR:
        kind = audit.get("error_kind")
        return kind if kind in ERROR_KINDS else "other"
    reasons = audit.get("reasons") or []
    if not reasons:
        return "none"
    first = str(reasons[0])
    name = first.split("=", 1)[0].split(":", 1)[0].split(" ", 1)[0]
    return name if name in known else "other"
