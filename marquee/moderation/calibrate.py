"""Per-category review and block thresholds fitted to a platform's labelled items.

For each category of the policy, the review threshold is the lowest score at which
flagging reaches a per-category precision, and stays there for every higher threshold
(precision over "harmful vs clean": an insult flagged as threat is still rightly
flagged). That gives the most recall the precision allows. A policy flags an item when
any category does, so the false flags of the categories add up: the per-category
precision starts at the target and is raised until the whole policy's flags reach the
target on the labelled sample. The block threshold is fitted
the same way with the stricter block precision. A category with too few items of its
own (`min_support`) keeps its thresholds, and the report says so.

Bootstrap: the fit is repeated on `rounds` resamples of the items (with replacement);
the 2.5th and 97.5th percentiles of each fitted threshold give its 95% interval, which
says how much the labelled sample can be trusted.

Pure numpy, no models: the scores come with the items (from the file, or from the
models in `score_items`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np
import yaml

from marquee.moderation.labels import LabelledItem
from marquee.moderation.policy import Policy, parse_policy

MIN_SUPPORT = 5
BOOTSTRAP_ROUNDS = 200


@dataclass(frozen=True)
class FittedThreshold:
    value: float | None  # None: the target cannot be reached on this sample
    interval: tuple[float, float] | None
    precision: float | None
    recall: float | None


@dataclass(frozen=True)
class CategoryFit:
    name: str
    support: int  # items labelled with this category
    review: FittedThreshold
    block: FittedThreshold
    kept: str | None = None  # why the previous thresholds were kept, when they were
    off: str | None = None  # why the category now decides nothing (review = block = 1.0)


@dataclass
class Calibration:
    target_precision: float
    block_precision: float
    items: int
    harmful: int
    categories: dict[str, CategoryFit] = field(default_factory=dict)
    category_precision: float = 0.0  # what each category was fitted to, >= the target
    flagged_precision: float | None = None  # the whole policy's review flags on the sample
    flagged_recall: float | None = None


def lowest_threshold(scores: np.ndarray, harmful: np.ndarray, target: float) -> float | None:
    """The lowest observed score t with precision(score >= t) >= target for t and every
    higher observed score; None when even the highest score misses the target."""
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], harmful[order]
    # Ties share one threshold: judge each distinct score with all items at or above it.
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    flagged = np.arange(1, len(ranked) + 1)[last_of_tie]
    precision = np.cumsum(truth)[last_of_tie] / flagged
    thresholds = ranked[last_of_tie]
    below = np.flatnonzero(precision < target)
    first_bad = below[0] if len(below) else len(thresholds)
    return float(thresholds[first_bad - 1]) if first_bad > 0 else None


def _measure(scores: np.ndarray, harmful: np.ndarray, own: np.ndarray, threshold: float | None):
    if threshold is None:
        return None, None
    flagged = scores >= threshold
    precision = float(harmful[flagged].mean()) if flagged.any() else None
    recall = float(flagged[own].mean()) if own.any() else None
    return precision, recall


def _fit_one(scores, harmful, own, target, rng, rounds) -> FittedThreshold:
    value = lowest_threshold(scores, harmful, target)
    resampled = []
    for _ in range(rounds):
        pick = rng.integers(0, len(scores), len(scores))
        fitted = lowest_threshold(scores[pick], harmful[pick], target)
        if fitted is not None:
            resampled.append(fitted)
    interval = (float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))) if resampled else None
    precision, recall = _measure(scores, harmful, own, value)
    return FittedThreshold(value, interval, precision, recall)


def fit_thresholds(
    items: list[LabelledItem],
    policy: Policy,
    target_precision: float,
    block_precision: float | None = None,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
    min_support: int = MIN_SUPPORT,
) -> Calibration:
    """Review/block thresholds per text category of `policy` from scored, labelled items."""
    if not 0.0 < target_precision < 1.0:
        raise ValueError(f"--target-precision {target_precision}; allowed: a number between 0 and 1, exclusive")
    block_precision = block_precision if block_precision is not None else max(target_precision, 0.99)
    if not target_precision <= block_precision < 1.0:
        raise ValueError(f"--block-precision {block_precision}; allowed: from the target precision up to (not) 1")
    category_precision = target_precision
    while True:
        calibration = _fit_categories(items, policy, category_precision, block_precision, rounds, seed, min_support)
        calibration.target_precision = target_precision
        if calibration.flagged_precision is None or calibration.flagged_precision >= target_precision:
            return calibration
        if category_precision >= 0.999:
            return calibration  # the report shows the precision reached
        category_precision = min(0.999, 1.0 - (1.0 - category_precision) * 0.8)


def _fit_categories(items, policy, category_precision, block_precision, rounds, seed, min_support) -> Calibration:
    harmful = np.array([item.harmful for item in items])
    calibration = Calibration(category_precision, block_precision, len(items), int(harmful.sum()))
    calibration.category_precision = category_precision
    rng = np.random.default_rng(seed)
    flagged = np.zeros(len(items), dtype=bool)
    for name, thresholds in policy.text.categories.items():
        scored = [i for i, item in enumerate(items) if name in item.scores]
        if not scored:
            continue
        scores = np.array([items[i].scores[name] for i in scored])
        truth = harmful[scored]
        labels = np.array([items[i].label for i in scored])
        # A category that is no label (the lexical `profanity`) is judged on every harmful item.
        own = labels == name if (labels == name).any() else truth
        support = int((labels == name).sum())
        review = _fit_one(scores, truth, own, category_precision, rng, rounds)
        block = _fit_one(scores, truth, own, max(block_precision, category_precision), rng, rounds)
        kept = off = None
        if support and support < min_support:
            kept = f"only {support} items labelled {name} (need {min_support})"
        elif review.value is None:
            # Keeping the old thresholds would break the target: the category is switched off.
            off = f"precision {category_precision:.3f} is not reached at any score"
        calibration.categories[name] = CategoryFit(name, support, review, block, kept, off)
        if off is None:
            flagged[scored] |= scores >= (thresholds.review if kept else review.value)
    if flagged.any():
        calibration.flagged_precision = float(harmful[flagged].mean())
    if harmful.any():
        calibration.flagged_recall = float(flagged[harmful].mean())
    return calibration


def calibrated_policy_yaml(base_raw: dict, calibration: Calibration, version: str) -> str:
    """The base policy with the fitted thresholds (block >= review, both in [0, 1])."""
    raw = yaml.safe_load(yaml.safe_dump(base_raw))
    raw["version"] = version
    categories = raw["text"]["categories"]
    for name, fit in calibration.categories.items():
        if fit.kept is not None:
            continue
        if fit.off is not None:
            categories[name] = {"review": 1.0, "block": 1.0}
            continue
        review = round(fit.review.value, 4)
        # No score reaches the block precision: block nothing (1.0 only at a perfect score).
        block = round(fit.block.value, 4) if fit.block.value is not None else 1.0
        categories[name] = {"review": review, "block": max(block, review)}
    header = (
        f"# Calibrated by `marquee moderation calibrate` on {calibration.items} labelled items "
        f"({calibration.harmful} harmful), target precision {calibration.target_precision} "
        f"(block {calibration.block_precision}), {datetime.date.today().isoformat()}.\n"
    )
    text = header + yaml.safe_dump(raw, sort_keys=False)
    parse_policy(text.encode(), "calibrated policy")  # never write a policy the routes would refuse
    return text


def default_version(base: Policy, today: datetime.date | None = None) -> str:
    return f"{(today or datetime.date.today()).isoformat()}.calibrated-from-{base.version}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def readable_diff(base: Policy, candidate: Policy, calibration: Calibration) -> str:
    """A table a reviewer can read: old -> new thresholds with their 95% intervals, and
    precision/recall of the new ones on the labelled sample."""
    lines = [
        f"policy {base.version} -> {candidate.version}",
        f"labelled items: {calibration.items} ({calibration.harmful} harmful); target precision "
        f"{calibration.target_precision}, block precision {calibration.block_precision}",
        f"each category fitted to precision {calibration.category_precision:.3f}; the whole policy flags with "
        f"precision {_fmt(calibration.flagged_precision)}, recall {_fmt(calibration.flagged_recall)} on this sample",
        "",
        f"{'category':<11} {'support':>7}  {'review old -> new [95% CI]':<34} {'block old -> new [95% CI]':<34} "
        "review P / R",
    ]
    for name, fit in calibration.categories.items():
        old, new = base.text.categories[name], candidate.text.categories[name]

        def cell(before: float, after: float, fitted: FittedThreshold) -> str:
            ci = f"[{_fmt(fitted.interval[0])}, {_fmt(fitted.interval[1])}]" if fitted.interval else "[-]"
            arrow = "=" if before == after else "->"
            return f"{before:.3f} {arrow} {after:.3f} {ci}"

        row = f"{name:<11} {fit.support:>7}  {cell(old.review, new.review, fit.review):<34} "
        row += f"{cell(old.block, new.block, fit.block):<34} {_fmt(fit.review.precision)} / {_fmt(fit.review.recall)}"
        note = f"  (kept: {fit.kept})" if fit.kept else f"  (off: {fit.off})" if fit.off else ""
        lines.append(row + note)
    return "\n".join(lines) + "\n"
