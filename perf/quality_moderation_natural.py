"""Text moderation quality on the templated held-out split and on the hand-written
natural set, with and without the Jigsaw BiLSTM signal, for a classifier that never saw the
natural set, and after calibration on a small labelled sample.

    .venv/bin/python -m perf.quality_moderation_natural [--final]

The cascade runs in-process on the exported ONNX graphs (export/moderation/
offline_cascade.py: the route's own `judge` and the policy's `decide`). Without
`--final` only the natural set's `dev` part is reported; `--final` adds its held-out
`final` part (look at it once per model change). Writes
perf/reports/moderation_natural_quality.json (`--precision fp32`: ..._fp32.json).

The shipped classifier was trained on the generated set plus the natural set's `dev` part
(export/moderation/training_set.py), so its `dev` figures are on training data and
judge nothing; `final` and the templated held-out split are the checks.

Conditions:
- `shipped`: the exported head and the shipped policy (policies/moderation.yaml);
- `with_jigsaw`: the shipped policy plus the Jigsaw model's toxic/obscene/threat/insult
  as four more categories, their thresholds fitted by `calibrate` (target 0.97) on the
  templated held-out split (never on the natural set);
- `generated_only`: the shipped recipe (export/moderation/finetune.py) trained on the
  generated set alone (never on the natural set), thresholds fitted on the templated
  held-out split as the shipped ones were (FP32 PyTorch; with `--final` only; minutes);
- `calibrated_on_dev`: that generated-only classifier, thresholds from `calibrate
  --target-precision 0.95` on the natural `dev` part (the "platform's small labelled
  sample"), measured on `final` only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from export.moderation import jigsaw_bilstm, offline_cascade
from export.moderation.natural_set import load_natural_set
from export.moderation.text_dataset import DEFAULT_SEED, build_dataset
from export.moderation.text_quality import cascade_quality
from marquee.moderation.calibrate import calibrated_policy_yaml, fit_thresholds
from marquee.moderation.labels import LabelledItem
from marquee.moderation.policy import default_policy_path, parse_policy
from marquee.routes.moderate_text.cascade import class_scores, decision_scores
from marquee.specs.moderation_text import JIGSAW_LABELS, TEXT_CLASSES

REPORT = Path(__file__).resolve().parent / "reports" / "moderation_natural_quality.json"
JIGSAW_SIGNALS = ("toxic", "obscene", "threat", "insult")
SHIPPED_SIGNALS = ("harmful", "profanity")  # what the shipped policy decides on


def jigsaw_scores(texts: list[str], onnx_path: Path) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    vocabulary = jigsaw_bilstm.extract_vocabulary(jigsaw_bilstm.package_directory() / "tokenizer.pickle")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"word_ids": vocabulary.encode(texts)})[0]
    return {f"jigsaw_{n}": probabilities[:, JIGSAW_LABELS.index(n)] for n in JIGSAW_SIGNALS}


def labelled_items(scored: offline_cascade.ScoredTexts, labels: list[str]) -> list[LabelledItem]:
    items = []
    for i, label in enumerate(labels):
        scores = decision_scores(scored.profanity[i], class_scores(scored.probabilities[i], TEXT_CLASSES))
        scores.update({name: float(values[i]) for name, values in (scored.extra or {}).items()})
        items.append(LabelledItem(i, label, None, scores))
    return items


def quality(scored, labels, policy) -> dict:
    results = offline_cascade.decisions(scored, policy)
    decisions = [d for d, _ in results]
    report = cascade_quality(labels, decisions, [len(a["stages"]) for _, a in results])
    report["policy_version"] = policy.version
    # At equal recall: every text ranked by how far its strongest category is past its review
    # threshold (max of score / review), the policy's own rule with one knob.
    margin = np.array([max(a["scores"][c] / t.review for c, t in policy.text.categories.items()) for _, a in results])
    harmful = np.array([label != "clean" for label in labels])
    report["precision_at_recall_0.95"] = precision_at_recall(margin, harmful, 0.95)
    return report


def precision_at_recall(score: np.ndarray, harmful: np.ndarray, recall: float) -> float:
    order = np.argsort(-score, kind="stable")
    true_positives = np.cumsum(harmful[order])
    needed = int(np.searchsorted(true_positives, recall * harmful.sum())) + 1
    return round(float(true_positives[needed - 1] / needed), 4)


def _subset(scored: offline_cascade.ScoredTexts, rows: list[int]) -> offline_cascade.ScoredTexts:
    extra = {k: v[rows] for k, v in scored.extra.items()} if scored.extra else None
    return offline_cascade.ScoredTexts(scored.profanity[rows], scored.probabilities[rows], extra)


def with_jigsaw_policy(base_raw: dict, tuning: list[LabelledItem]) -> object:
    """The shipped thresholds plus Jigsaw categories fitted on the templated split."""
    raw = yaml.safe_load(yaml.safe_dump(base_raw))
    raw["version"] = f"{base_raw['version']}+jigsaw"
    for name in JIGSAW_SIGNALS:
        raw["text"]["categories"][f"jigsaw_{name}"] = {"review": 1.0, "block": 1.0}
    start = parse_policy(yaml.safe_dump(raw).encode(), "with-jigsaw")
    only_jigsaw = [
        LabelledItem(i.line, i.label, None, {k: v for k, v in i.scores.items() if k.startswith("jigsaw_")})
        for i in tuning
    ]
    fitted = fit_thresholds(only_jigsaw, start, target_precision=0.97, rounds=50)
    return parse_policy(calibrated_policy_yaml(raw, fitted, raw["version"]).encode(), "with-jigsaw")


def generated_only(repository: Path, sets: dict, base_raw: dict, shipped) -> dict:
    """A classifier that never saw the natural set, measured on every set, and calibrated on dev."""
    from export.moderation import finetune, text_classifier, training_set

    # The shipped recipe (logistic head, then fine-tuned with the encoder) on the generated set alone.
    classifier = finetune.trained_classifier(training_set.generated_only(DEFAULT_SEED), DEFAULT_SEED)
    lexical_onnx = repository / "profanity_lexical" / "1" / "model.onnx"
    scored = {
        name: offline_cascade.ScoredTexts(
            offline_cascade.lexical_scores(lexical_onnx, texts), text_classifier.run_batched(classifier, texts)
        )
        for name, (texts, _) in sets.items()
    }
    # As export/moderation/default_policy.py fits the shipped policy: harmful and profanity
    # decide, the single classes stay off (not scored here, so the fit leaves them alone).
    held = labelled_items(scored["templated_test"], sets["templated_test"][1])
    shipped_signals = [LabelledItem(i.line, i.label, None, {k: i.scores[k] for k in SHIPPED_SIGNALS}) for i in held]
    fitted = fit_thresholds(shipped_signals, shipped, 0.95, rounds=50)
    policy = parse_policy(calibrated_policy_yaml(base_raw, fitted, "generated-only").encode(), "generated-only")
    dev_items = labelled_items(scored["natural_dev"], sets["natural_dev"][1])
    calibration = fit_thresholds(dev_items, policy, target_precision=0.95, rounds=200)
    calibrated = parse_policy(
        calibrated_policy_yaml(base_raw, calibration, "generated-only+dev-calibrated").encode(), "calibrated"
    )
    return {
        "generated_only": {name: quality(scored[name], labels, policy) for name, (_, labels) in sets.items()},
        "generated_only_thresholds": _thresholds(policy),
        "calibrated_on_dev": {
            "natural_final": quality(scored["natural_final"], sets["natural_final"][1], calibrated),
            "thresholds": _thresholds(calibrated),
            "category_precision": calibration.category_precision,
        },
    }


def _thresholds(policy) -> dict:
    return {k: {"review": t.review, "block": t.block} for k, t in policy.text.categories.items()}


def main() -> None:
    from perf.machine import machine_info

    parser = argparse.ArgumentParser()
    parser.add_argument("--final", action="store_true", help="also report the natural set's held-out final part")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--precision", default="int8", choices=("int8", "fp32"))
    args = parser.parse_args()

    dataset = build_dataset()
    natural = load_natural_set()
    sets = {"templated_test": ([e.text for e in dataset.test], [e.label for e in dataset.test])}
    for split in ("dev", "final") if args.final else ("dev",):
        rows = [c for c in natural if c.split == split]
        sets[f"natural_{split}"] = ([c.text for c in rows], [c.label for c in rows])

    base_raw = yaml.safe_load(default_policy_path().read_bytes())
    shipped = parse_policy(default_policy_path().read_bytes(), default_policy_path())
    jigsaw_bilstm.export_jigsaw(args.repository)  # cached by content hash
    jigsaw_onnx = args.repository / "jigsaw_bilstm" / "1" / "model.onnx"
    scored = {}
    for name, (texts, _) in sets.items():
        s = offline_cascade.score_texts(args.repository, texts, f"text_classifier_{args.precision}")
        scored[name] = offline_cascade.ScoredTexts(s.profanity, s.probabilities, jigsaw_scores(texts, jigsaw_onnx))
    plain = {n: offline_cascade.ScoredTexts(s.profanity, s.probabilities) for n, s in scored.items()}

    jigsaw_policy = with_jigsaw_policy(base_raw, labelled_items(scored["templated_test"], sets["templated_test"][1]))
    report = {
        "what": __doc__.split("\n\n")[0],
        "machine": machine_info(),
        "classifier_precision": args.precision,
        "sizes": {n: {c: labels.count(c) for c in TEXT_CLASSES} for n, (_, labels) in sets.items()},
        "shipped": {n: quality(plain[n], sets[n][1], shipped) for n in sets},
        "with_jigsaw": {n: quality(scored[n], sets[n][1], jigsaw_policy) for n in sets},
        "with_jigsaw_thresholds": {
            k: {"review": t.review, "block": t.block}
            for k, t in jigsaw_policy.text.categories.items()
            if k.startswith("jigsaw_")
        },
    }
    if args.final:
        report.update(generated_only(args.repository, sets, base_raw, shipped))
    path = REPORT if args.precision == "int8" else REPORT.with_stem(f"{REPORT.stem}_{args.precision}")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    conditions = ("shipped", "with_jigsaw", "generated_only") if args.final else ("shipped", "with_jigsaw")
    summary = {
        cond: {n: (q["flagged_vs_allow"], q["precision_at_recall_0.95"]) for n, q in report[cond].items()}
        for cond in conditions
    }
    print(json.dumps(summary, indent=1))
    if args.final:
        print("calibrated_on_dev final:", report["calibrated_on_dev"]["natural_final"]["flagged_vs_allow"])


if __name__ == "__main__":
    main()
