"""How much the shipped text classifier's quality moves between fine-tuning runs that
differ only in float rounding (thread count) or in the run's own seed, all judged by the
shipped policy's committed thresholds.

    .venv/bin/python -m perf.quality_moderation_training_noise [--runs 2:0,1:0,2:1,2:2] [--final] [--append]

Each run `THREADS:SEED` fine-tunes the classifier from scratch (export/moderation/
finetune.py, on the shipped training set) with torch limited to THREADS threads and
`TextExportConfig.training_seed` SEED (the shipped classifier's is the dataset seed,
20261122), exports it into a scratch repository (with a
scratch cache, so no checkpoint is shared), and scores the templated held-out split and
the natural set with the INT8 cascade, as perf/quality_moderation_natural.py does.
Fine-tuning on another CPU rounds differently too; this measures what that costs
without a second machine. About 5 minutes per run on 2 cores. Writes
perf/reports/moderation_training_noise.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from export.moderation import offline_cascade
from export.moderation.natural_set import load_natural_set
from export.moderation.text_dataset import build_dataset
from export.moderation.text_pipeline import TextExportConfig, export_text_moderation
from marquee.moderation.policy import default_policy_path, parse_policy
from perf.quality_moderation_natural import quality

REPORT = Path(__file__).resolve().parent / "reports" / "moderation_training_noise.json"


def evaluation_sets(final: bool) -> dict[str, tuple[list[str], list[str]]]:
    test = build_dataset().test
    sets = {"templated_test": ([e.text for e in test], [e.label for e in test])}
    for split in ("dev", "final") if final else ("dev",):
        rows = [c for c in load_natural_set() if c.split == split]
        sets[f"natural_{split}"] = ([c.text for c in rows], [c.label for c in rows])
    return sets


def one_run(threads: int, seed: int, scratch: Path, sets: dict, policy) -> dict:
    os.environ["MARQUEE_CACHE"] = str(scratch / "cache")  # read at call time by marquee.paths
    torch.set_num_threads(threads)
    started = time.perf_counter()
    export_text_moderation(scratch / "repository", config=TextExportConfig(training_seed=seed))
    result = {
        "threads": threads,
        "training_seed": seed,
        # Set for the whole process, it also changes which kernels the math libraries pick.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "export_s": round(time.perf_counter() - started, 1),
    }
    for name, (texts, labels) in sets.items():
        q = quality(offline_cascade.score_texts(scratch / "repository", texts), labels, policy)
        result[name] = {
            "flagged_vs_allow": q["flagged_vs_allow"],
            "precision_at_recall_0.95": q["precision_at_recall_0.95"],
            "clean_false_flag_rate": q["per_category"]["clean"]["false_flag_rate"],
        }
    return result


def main() -> None:
    from perf.machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="2:0,1:0,2:1,2:2", help="THREADS:SEED pairs, comma-separated")
    parser.add_argument("--final", action="store_true", help="also score the natural set's held-out final part")
    parser.add_argument("--append", action="store_true", help="keep the report's earlier runs")
    args = parser.parse_args()
    runs = [tuple(int(x) for x in pair.split(":")) for pair in args.runs.split(",")]
    policy = parse_policy(default_policy_path().read_bytes(), default_policy_path())
    sets = evaluation_sets(args.final)
    earlier = json.loads(REPORT.read_text())["runs"] if args.append and REPORT.is_file() else []
    report = {"what": __doc__.split("\n\n")[0], "machine": machine_info(), "policy_version": policy.version}
    report["runs"] = earlier
    for threads, seed in runs:
        with tempfile.TemporaryDirectory(prefix="marquee-noise-") as scratch:
            report["runs"].append(one_run(threads, seed, Path(scratch), sets, policy))
        print(json.dumps(report["runs"][-1]), flush=True)
        REPORT.write_text(json.dumps(report, indent=2) + "\n")  # after each run: a long job keeps what it has


if __name__ == "__main__":
    main()
