"""Benchmark: the served `moderate_text` route vs the same models in PyTorch, same sentences.

    .venv/bin/python -m perf.bench_moderation_text [--seconds 15] [--batch 16] [--concurrency 2]

One run, same host, same thread budget (2 threads: the served classifier runs two
single-threaded instances, PyTorch gets torch.set_num_threads(2)), same held-out texts:
- served cascade, shipped policy: stage 1 for every text, stage 2 for the ambiguous band;
- served, every text through stage 2 (a full-band policy variant): the like-for-like
  comparison with a transformer run on every text;
- reference cascade in-process: alt-profanity-check (scikit-learn) for every text, the
  Hugging Face `transformers` BertModel + the same pooling and head for the band;
- reference classifier in-process: the PyTorch MiniLM + head on every text.
Served figures include gRPC, JSON audits and BLS hops; per-stage p99 comes from the
route's own audit (`stages[].ms`). Caveats: served runs INT8 with two requests in flight, PyTorch FP32
one batch at a time; on a shared host, PyTorch's two OpenMP threads suffer more from other load
(see its p99). Writes perf/reports/moderation_text.json.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from marquee import render
from marquee.moderation.policy import default_policy_path, load_policy
from marquee.paths import cache_dir
from marquee.specs.moderation_text import MODERATE_TEXT, TEXT_MODERATION_MODELS

REPORTS = Path(__file__).resolve().parent / "reports"
CONFIGURATIONS = ("served_cascade", "served_all_stage2", "pytorch_cascade", "pytorch_all_stage2")


# Route variants that differ from the shipped one only in the policy's ambiguous band:
# every text below the lexical block line through stage 2, and the cost-saving band.
FULL_BAND_ROUTE = "moderate_text_full_band"
NARROW_BAND_ROUTE = "moderate_text_narrow_band"
NARROW_BAND = (0.10, 0.90)


def prepare_repository() -> Path:
    """Text models exported (content-hash cached) plus the two band variants of the route."""
    from export.moderation.text_pipeline import export_text_moderation

    repository = cache_dir() / "repositories" / "moderation_text"
    export_text_moderation(repository)
    block = load_policy(default_policy_path()).text.categories["profanity"].block
    _band_variant(repository, FULL_BAND_ROUTE, (0.0, block))
    _band_variant(repository, NARROW_BAND_ROUTE, NARROW_BAND)
    return repository


def _band_variant(repository: Path, name: str, band: tuple[float, float]) -> None:
    target = render.write_variant(repository, MODERATE_TEXT, name)
    policy = yaml.safe_load((target / "policy.yaml").read_text())
    policy["version"] = f"bench-{name}"
    policy["text"]["ambiguous_band"] = list(band)
    (target / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


def moderate(client, texts: list[str], model: str = MODERATE_TEXT.name) -> tuple[list[str], list[dict]]:
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    result = client.infer(model, [tensor], client_timeout=120)
    return [d.decode() for d in result.as_numpy("decision")], [json.loads(a) for a in result.as_numpy("audit")]


def _batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[s : s + size] for s in range(0, len(texts) - size + 1, size)]


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def served(url: str, model: str, texts: list[str], batch: int, concurrency: int, seconds: float) -> dict:
    """Closed loop: `concurrency` clients each send `batch` texts per request for `seconds`."""
    import tritonclient.grpc as grpcclient

    batches = _batches(texts, batch)
    request_ms: list[float] = []
    stage_ms: dict[str, list[float]] = {"stage1": [], "stage2": []}
    stage2_texts = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        with grpcclient.InferenceServerClient(url) as client:
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                _, audits = moderate(client, batches[i % len(batches)], model)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    request_ms.append(elapsed)
                    # One stage call serves the whole request: count its time once.
                    stage_ms["stage1"].append(audits[0]["stages"][0]["ms"])
                    second = [a["stages"][1]["ms"] for a in audits if len(a["stages"]) == 2]
                    if second:
                        stage_ms["stage2"].append(second[0])
                    stage2_texts[0] += len(second)
                i += concurrency

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return _raw(request_ms, stage_ms["stage1"], stage_ms["stage2"], len(request_ms) * batch, stage2_texts[0], wall)


def reference(repository: Path, texts: list[str], batch: int, seconds: float, band: tuple[float, float] | None) -> dict:
    """In-process PyTorch: stage 2 on every text (band None) or the cascade with `band`."""
    import torch
    from transformers import AutoTokenizer

    from export.moderation.lexical import load_reference
    from export.moderation.text_classifier import minilm_directory
    from export.moderation.text_pipeline import load_classifier

    torch.set_num_threads(2)
    classifier = load_classifier(repository)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_directory()))
    vectorizer, lexical_model = load_reference()
    batches = _batches(texts, batch)
    request_ms, stage1_ms, stage2_ms, stage2_texts = [], [], [], 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    i = 0
    with torch.inference_mode():
        while time.perf_counter() < deadline:
            texts_now = batches[i % len(batches)]
            t0 = time.perf_counter()
            selected = texts_now
            if band is not None:
                profanity = lexical_model.predict_proba(vectorizer.transform(texts_now))[:, 1]
                selected = [t for t, p in zip(texts_now, profanity, strict=True) if band[0] <= p <= band[1]]
                stage1_ms.append((time.perf_counter() - t0) * 1000)
            t1 = time.perf_counter()
            if selected:
                encoded = tokenizer(selected, padding=True, truncation=True, max_length=128, return_tensors="pt")
                classifier(encoded["input_ids"], encoded["attention_mask"])
                stage2_texts += len(selected)
                stage2_ms.append((time.perf_counter() - t1) * 1000)
            request_ms.append((time.perf_counter() - t0) * 1000)
            i += 1
    wall = time.perf_counter() - started
    return _raw(request_ms, stage1_ms, stage2_ms, len(request_ms) * batch, stage2_texts, wall)


def _raw(request_ms, stage1_ms, stage2_ms, texts: int, stage2_texts: int, wall: float) -> dict:
    return {
        "request_ms": request_ms,
        "stage1": stage1_ms,
        "stage2": stage2_ms,
        "texts": texts,
        "stage2_texts": stage2_texts,
        "wall": wall,
    }


def summarise(windows: list[dict]) -> dict:
    """Merge the measurement windows of one configuration into its figures."""
    merged = {key: [] for key in ("request_ms", "stage1", "stage2")}
    for window in windows:
        for key in merged:
            merged[key] += window[key]
    texts = sum(w["texts"] for w in windows)
    return {
        "texts_per_s": round(texts / sum(w["wall"] for w in windows), 1),
        "requests": len(merged["request_ms"]),
        "request_ms_p50": _p(merged["request_ms"], 50),
        "request_ms_p99": _p(merged["request_ms"], 99),
        "stage1_ms_p99": _p(merged["stage1"], 99),
        "stage2_ms_p99": _p(merged["stage2"], 99),
        "share_of_texts_reaching_stage2": round(sum(w["stage2_texts"] for w in windows) / max(texts, 1), 3),
    }


def main() -> None:
    from export.moderation.text_dataset import build_dataset
    from marquee.server import TritonServer, free_ports
    from perf.machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per configuration, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    repository = prepare_repository()
    texts = [e.text for e in build_dataset().test]
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    band = load_policy(default_policy_path()).text.ambiguous_band
    with TritonServer(repository, free_ports()) as server:
        import tritonclient.grpc as grpcclient

        with grpcclient.InferenceServerClient(server.grpc_url) as client:  # warm-up
            for model in (MODERATE_TEXT.name, FULL_BAND_ROUTE):
                for chunk in _batches(texts, args.batch)[:8]:
                    moderate(client, chunk, model)
        # Other work on a shared host comes and goes: alternate short windows of every
        # configuration so each sees the same conditions, then merge them.
        windows: dict[str, list[dict]] = {name: [] for name in CONFIGURATIONS}
        window_s = args.seconds / args.rounds
        for _ in range(args.rounds):
            windows["served_cascade"].append(
                served(server.grpc_url, MODERATE_TEXT.name, texts, args.batch, args.concurrency, window_s)
            )
            windows["served_all_stage2"].append(
                served(server.grpc_url, FULL_BAND_ROUTE, texts, args.batch, args.concurrency, window_s)
            )
            windows["pytorch_cascade"].append(reference(repository, texts, args.batch, window_s, band))
            windows["pytorch_all_stage2"].append(reference(repository, texts, args.batch, window_s, None))
    results = {name: summarise(runs) for name, runs in windows.items()}
    ratios = {
        "cascade_served_over_pytorch": round(
            results["served_cascade"]["texts_per_s"] / results["pytorch_cascade"]["texts_per_s"], 2
        ),
        "all_stage2_served_over_pytorch": round(
            results["served_all_stage2"]["texts_per_s"] / results["pytorch_all_stage2"]["texts_per_s"], 2
        ),
    }
    report = {
        "benchmark": "moderate_text served (Triton, ONNX INT8 classifier) vs PyTorch (transformers BertModel)",
        "machine": machine_info(),
        "settings": {
            "texts": len(texts),
            "texts_per_request": args.batch,
            "client_concurrency": args.concurrency,
            "seconds_per_configuration": args.seconds,
            "alternating_rounds": args.rounds,
            "thread_budget": "2 (served: classifier 2 instances x 1 intra-op thread; PyTorch: set_num_threads(2))",
            "ambiguous_band": list(band),
            "models": [spec.name for spec in TEXT_MODERATION_MODELS],
        },
        "results": results,
        "throughput_ratios": ratios,
    }
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "moderation_text.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"results": results, "throughput_ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
