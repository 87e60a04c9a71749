"""Benchmark: the served image route against NudeNet's own pipeline on the same images.

    .venv/bin/python -m perf.bench_moderation_image [--requests 60] [--concurrency 2]

Contenders, each driven by `--concurrency` client threads, one image per request, the
same synthetic JPEGs (640x480, mixed content) in the same order:
- reference: `NudeDetector.detect` (OpenCV decode + letterbox, ONNX Runtime, NumPy
  postprocess) with one ONNX Runtime intra-op thread per worker: the thread budget of
  the served models, which each run one intra-op thread;
- served, detector only: `moderate_image` with OCR off (DALI CPU decode + letterbox,
  NudeNet over the onnxruntime backend, the route's postprocess and policy), over gRPC;
- served, full route: detector + PP-OCRv4 text detection/recognition (+ text route
  fallback, since the text route is not loaded here).
Reports throughput (images/s) and client-side p50/p99 latency, one run each, with the
machine description and its load average. Writes perf/reports/moderation_image.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from export.moderation_image import export_image_moderation, synthetic
from marquee import render
from marquee.server import TritonServer, free_ports
from marquee.specs.moderation_image import IMAGE_MODERATION_MODELS, MODERATE_IMAGE, route_variant
from perf.machine import machine_info

REPORT = Path(__file__).resolve().parent / "reports" / "moderation_image.json"
NO_OCR = route_variant("moderate_image_no_ocr", ocr_enabled="false")


def bench_images(count: int = 12) -> list[bytes]:
    makers = (synthetic.plain_image, synthetic.blobs_image)
    images = [synthetic.encode(makers[i % 2](480, 640, seed=i)) for i in range(count - 2)]
    images += [synthetic.encode(synthetic.caption_image(c, 480, 640)) for c in ("SALE TODAY", "hello there")]
    return images


def drive(make_state, call, images: list[bytes], requests: int, concurrency: int, warmup: int = 2) -> dict:
    """`requests` calls over `concurrency` threads. Each thread builds its state (a
    detector, a client) and makes `warmup` untimed calls before the clock starts."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)
    next_index = iter(range(requests))

    def worker() -> None:
        state = make_state()
        for i in range(warmup):
            call(state, images[i % len(images)])
        ready.wait()
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            started = time.perf_counter()
            call(state, images[index % len(images)])
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": requests,
        "concurrency": concurrency,
        "images_per_s": round(requests / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def _detector_session():
    """NudeNet's detector in ONNX Runtime with the served models' thread budget: one
    intra-op thread per worker."""
    import onnxruntime as ort

    from export.moderation_image.pipeline import nudenet_model

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(nudenet_model()), options, providers=["CPUExecutionProvider"])


def reference(images: list[bytes], requests: int, concurrency: int) -> dict:
    from nudenet import NudeDetector

    def make_detector():
        detector = NudeDetector()
        detector.onnx_session = _detector_session()
        return detector

    return drive(make_detector, lambda detector, data: detector.detect(data), images, requests, concurrency)


def bare_detector(images: list[bytes], requests: int, concurrency: int) -> dict:
    """The ceiling for any server of this model on these threads: the detector alone, on
    tensors NudeNet's own preprocessing made before the clock started (no decode, no
    letterbox, no postprocess, no crossing)."""
    from nudenet.nudenet import _read_image

    tensors = {data: _read_image(data)[0] for data in images}
    return drive(
        _detector_session,
        lambda session, data: session.run(None, {"images": tensors[data]}),
        images,
        requests,
        concurrency,
    )


def served(server: TritonServer, model: str, images: list[bytes], requests: int, concurrency: int) -> dict:
    import tritonclient.grpc as grpcclient

    def call(client, data: bytes) -> None:
        tensor = grpcclient.InferInput("image", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([data], dtype=np.object_))
        result = client.infer(model, [tensor], client_timeout=60)
        if result.as_numpy("decision")[0] == b"error":
            raise RuntimeError(f"{model} refused a benchmark image: {result.as_numpy('audit')[0]!r}")

    return drive(lambda: grpcclient.InferenceServerClient(server.grpc_url), call, images, requests, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    images = bench_images()
    workdir = Path(tempfile.mkdtemp(prefix="bench-moderation-image-"))
    try:
        repository = workdir / "repository"
        render.write(list(IMAGE_MODERATION_MODELS), repository)
        export_image_moderation(repository)
        render.write_variant(repository, MODERATE_IMAGE, NO_OCR.name, **NO_OCR.parameters)
        results = {
            "reference_nudenet_detect": reference(images, args.requests, args.concurrency),
            "bare_onnxruntime_detector": bare_detector(images, args.requests, args.concurrency),
        }
        print("reference", results["reference_nudenet_detect"], flush=True)
        print("bare", results["bare_onnxruntime_detector"], flush=True)
        with TritonServer(repository, free_ports(), log_path=workdir / "tritonserver.log") as server:
            for name, model in (("served_detector_only", NO_OCR.name), ("served_full_route", MODERATE_IMAGE.name)):
                results[name] = served(server, model, images, args.requests, args.concurrency)
                print(name, results[name], flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "benchmark": "moderation_image",
        "machine": {**machine_info(), "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "images": {"count": len(images), "size": "640x480 JPEG", "mix": "plain, skin-toned blobs, 2 captions"},
        "thread_budget": (
            f"{args.concurrency} client threads; reference: 1 ORT intra-op thread per worker; served: each model "
            "1 intra-op thread (DALI 1 thread), 2 route instances, all on the same host as the clients"
        ),
        "results": results,
        "ratio_detector_only_vs_reference_throughput": round(
            results["served_detector_only"]["images_per_s"] / results["reference_nudenet_detect"]["images_per_s"], 3
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
