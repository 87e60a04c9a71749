"""Quality of text moderation on the held-out templates: the served cascade and stage 2 alone.

    .venv/bin/python -m perf.quality_moderation_text

Exports the text models (cached), starts the embedded server and sends every held-out
text through `moderate_text` (shipped policy) and through a full-band variant (every
text below the lexical block line reaches stage 2). Stage 2 alone is the exported INT8
classifier run in-process on every text. Writes perf/reports/moderation_text_quality.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from export.moderation.text_quality import cascade_quality, stage2_quality
from marquee.moderation.policy import default_policy_path, load_policy
from marquee.specs.moderation_text import MAX_TEXTS, MODERATE_TEXT, TEXT_CLASSES, TEXT_CLASSIFIER_INT8
from perf.bench_moderation_text import FULL_BAND_ROUTE, NARROW_BAND, NARROW_BAND_ROUTE, moderate, prepare_repository

REPORT = Path(__file__).resolve().parent / "reports" / "moderation_text_quality.json"


def served_decisions(url: str, model: str, texts: list[str]) -> tuple[list[str], list[int]]:
    import tritonclient.grpc as grpcclient

    decisions, stage_counts = [], []
    with grpcclient.InferenceServerClient(url) as client:
        for start in range(0, len(texts), MAX_TEXTS):
            chunk_decisions, audits = moderate(client, texts[start : start + MAX_TEXTS], model)
            decisions += chunk_decisions
            stage_counts += [len(a["stages"]) for a in audits]
    return decisions, stage_counts


def main() -> None:
    from export.moderation.text_classifier import onnx_probabilities
    from export.moderation.text_dataset import build_dataset
    from marquee.server import TritonServer, free_ports
    from perf.machine import machine_info

    repository = prepare_repository()
    dataset = build_dataset()
    texts, labels = [e.text for e in dataset.test], [e.label for e in dataset.test]
    policy = load_policy(default_policy_path())
    with TritonServer(repository, free_ports()) as server:
        cascade = served_decisions(server.grpc_url, MODERATE_TEXT.name, texts)
        full_band = served_decisions(server.grpc_url, FULL_BAND_ROUTE, texts)
        narrow_band = served_decisions(server.grpc_url, NARROW_BAND_ROUTE, texts)
    probabilities = onnx_probabilities(repository / TEXT_CLASSIFIER_INT8.name / "1" / "model.onnx", texts)
    predicted = [TEXT_CLASSES[i] for i in probabilities.argmax(1)]
    report = {
        "what": "precision/recall on the held-out templates of export/moderation/text_dataset.py",
        "machine": machine_info(),
        "dataset": dataset.counts(),
        "held_out_templates": list(dataset.held_out_templates),
        "policy": {
            "version": policy.version,
            "sha256": policy.sha256,
            "ambiguous_band": list(policy.text.ambiguous_band),
        },
        "cascade_served_shipped_policy": cascade_quality(labels, *cascade),
        "cascade_served_full_band": cascade_quality(labels, *full_band),
        f"cascade_served_narrow_band_{NARROW_BAND[0]:.2f}_{NARROW_BAND[1]:.2f}": cascade_quality(labels, *narrow_band),
        "stage2_alone_int8": stage2_quality(labels, predicted),
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
