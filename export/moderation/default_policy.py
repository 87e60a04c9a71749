"""The shipped policy's text thresholds, refitted whenever the shipped head changes.

    .venv/bin/python -m export.moderation.default_policy [--repository model_repository]

Scores the generated set's templated held-out split with the exported INT8 graphs
(templates the head never saw; never the natural set) and fits `harmful` and
`profanity` with `calibrate`'s own fit: review at precision 0.95, block at 0.99. The
single classes stay off (1.0) in the shipped policy: they are not scored here, so the
fit leaves them alone. Prints the lines to put in policies/moderation.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from export.moderation import offline_cascade
from export.moderation.text_dataset import build_dataset
from marquee.moderation.calibrate import fit_thresholds
from marquee.moderation.labels import LabelledItem
from marquee.moderation.policy import default_policy_path, load_policy
from marquee.routes.moderate_text.cascade import HARMFUL_CATEGORY, LEXICAL_CATEGORY, class_scores, decision_scores
from marquee.specs.moderation_text import TEXT_CLASSES

TARGET_PRECISION = 0.95
BLOCK_PRECISION = 0.99


def held_out_items(repository: Path) -> list[LabelledItem]:
    """The templated held-out split with the two scores the shipped policy decides on."""
    test = build_dataset().test
    scored = offline_cascade.score_texts(repository, [e.text for e in test])
    items = []
    for i, (e, lexical, p) in enumerate(zip(test, scored.profanity, scored.probabilities, strict=True)):
        scores = decision_scores(lexical, class_scores(p, TEXT_CLASSES))  # the route's own scores
        items.append(LabelledItem(i, e.label, e.text, {k: scores[k] for k in (LEXICAL_CATEGORY, HARMFUL_CATEGORY)}))
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    args = parser.parse_args()
    items = held_out_items(args.repository)
    calibration = fit_thresholds(items, load_policy(default_policy_path()), TARGET_PRECISION, BLOCK_PRECISION)
    print(
        f"# {calibration.items} held-out templated texts ({calibration.harmful} harmful): flagged precision "
        f"{calibration.flagged_precision:.3f}, recall {calibration.flagged_recall:.3f}"
    )
    for name in (HARMFUL_CATEGORY, LEXICAL_CATEGORY):
        fit = calibration.categories[name]
        block = fit.block.value if fit.block.value is not None else 1.0
        print(f"    {name}: {{review: {fit.review.value:.4f}, block: {max(block, fit.review.value):.4f}}}")


if __name__ == "__main__":
    main()
