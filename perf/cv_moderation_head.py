"""Which text-moderation head ranks natural comments best: cross-validation on natural `dev`.

    .venv/bin/python -m perf.cv_moderation_head [--folds 5] [--draws 1] [--variants frozen,finetuned]

Each fold trains on the generated training split plus four fifths of the natural set's
`dev` part (real comments weighing `REAL_COMMENT_WEIGHT`, as shipped) and scores the
fifth left out; the out-of-fold scores of all folds are pooled. `final` is never read.

Variants:
- `frozen`: a logistic head on the frozen MiniLM's pooled embeddings (shipped until
  2026-12-04);
- `finetuned`: the same head as a start, then encoder and head trained together
  (export/moderation/finetune.py) for `--epochs` epochs: the shipped recipe since then.

Scores: `harmful` = 1 - P(clean), the policy's main signal. Reported per variant: precision
at recall 0.95 and 0.90, average precision, each with a bootstrap interval over the
pooled out-of-fold comments. Writes perf/reports/moderation_head_cv.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from export.moderation import finetune, natural_set, text_classifier, training_set
from export.moderation.text_dataset import DEFAULT_SEED
from perf.machine import machine_info
from perf.quality_moderation_natural import precision_at_recall

REPORT = Path(__file__).resolve().parent / "reports" / "moderation_head_cv.json"


def average_precision(score: np.ndarray, harmful: np.ndarray) -> float:
    order = np.argsort(-score, kind="stable")
    hits = harmful[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def folds_of(n: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[k::folds] for k in range(folds)]


def harmful_scores(variant: str, train: training_set.TrainingSet, texts: list[str], epochs: float, seed: int):
    classifier = finetune.trained_classifier(train, seed, epochs=epochs if variant == "finetuned" else 0.0)
    probabilities = text_classifier.run_batched(classifier.eval(), texts)
    return 1.0 - probabilities[:, 0]


def summary(score: np.ndarray, harmful: np.ndarray, seed: int = 0, resamples: int = 500) -> dict:
    def figures(rows):
        s, h = score[rows], harmful[rows]
        return precision_at_recall(s, h, 0.95), precision_at_recall(s, h, 0.90), average_precision(s, h)

    point = figures(np.arange(len(score)))
    rng = np.random.default_rng(seed)
    samples = np.array([figures(rng.integers(0, len(score), len(score))) for _ in range(resamples)])
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    names = ("precision_at_recall_0.95", "precision_at_recall_0.90", "average_precision")
    return {
        name: {"value": round(point[k], 4), "ci95": [round(low[k], 4), round(high[k], 4)]}
        for k, name in enumerate(names)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--epochs", type=float, default=finetune.EPOCHS)
    parser.add_argument("--variants", default="frozen,finetuned")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    generated = training_set.generated_only(DEFAULT_SEED)
    dev = natural_set.load_natural_set(split="dev")
    harmful = np.array([c.label != "clean" for c in dev])
    report = {"what": __doc__.split("\n\n")[0], "machine": machine_info(), "folds": args.folds, "epochs": args.epochs}
    for variant in args.variants.split(","):
        started = time.monotonic()
        pooled = []
        for draw in range(args.draws):
            score = np.zeros(len(dev))
            for k, held in enumerate(folds_of(len(dev), args.folds, seed=draw)):
                kept = [dev[i] for i in range(len(dev)) if i not in set(held.tolist())]
                train = generated.plus_real([c.text for c in kept], [c.label for c in kept])
                score[held] = harmful_scores(variant, train, [dev[i].text for i in held], args.epochs, DEFAULT_SEED)
                elapsed = time.monotonic() - started
                print(f"{variant} draw {draw} fold {k + 1}/{args.folds} done ({elapsed:.0f} s)", flush=True)
            pooled.append(summary(score, harmful, seed=draw))
        report[variant] = {"draws": pooled, "seconds": round(time.monotonic() - started, 1)}
        print(variant, json.dumps(pooled), flush=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
