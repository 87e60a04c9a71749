"""Peer benchmark: the same ranker on Triton (Marquee) and on Ray Serve, at equal p99.

    .venv/bin/marquee perf setup --peers   # Ray Serve in its own venv (.venv-peers)
    .venv/bin/python -m perf.bench_peer_ray [--p99-ms 10] [--rows 16]

All three systems take HTTP requests of `--rows` candidate rows from one load generator
(aiohttp, asyncio, same process, same concurrency sweep), one after the other on the same
machine:
- Triton: `ranker_fp32`, KServe v2 HTTP with binary tensors, dynamic batching as committed;
- Ray Serve + ONNX Runtime: the same ONNX file, one intra-op thread per replica;
- Ray Serve + PyTorch: the checkpoint it was exported from, one thread per replica.
Ray Serve is tuned as its documentation recommends for throughput: `@serve.batch`
(dynamic request batching), one replica per core (`num_replicas` = cores, `num_cpus=1`
each), and `max_ongoing_requests` above the batch size so that batches can fill.
Ray Serve needs a newer protobuf than tritonclient, so its half runs in `.venv-peers`
(`marquee perf setup --peers`), a child process with `--only ray`.
Reported: p50/p99 and rows/s per concurrency, and the best rows/s with p99 under a target.
Not a test: it takes several minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from rich.console import Console
from rich.table import Table

from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.specs.ranker import RANKER_FP32
from perf.machine import machine_info
from perf.peers import PEERS_PYTHON

console = Console()
# Ray Serve's batching, per its "Dynamic Request Batching" guide: up to 64 requests per
# call, waiting at most 1 ms for a batch to fill (Triton's ranker waits 200 us; Ray's
# asyncio hop costs more per batch, so a shorter wait only shrinks its batches).
RAY_MAX_BATCH = 64
RAY_BATCH_WAIT_S = 0.001


def _decode(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(body)) as arrays:
        return arrays["categorical"], arrays["dense"]


def _serve_app(kind: str, onnx_path: str, checkpoint: str, replicas: int):
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=2 * RAY_MAX_BATCH)
    class Ranker:
        def __init__(self):
            if kind == "onnxruntime":
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
                self.score = lambda c, d: session.run(["probability"], {"categorical": c, "dense": d})[0]
            else:
                import torch

                from export.ranker.train import load_checkpoint

                torch.set_num_threads(1)
                model, _, _ = load_checkpoint(Path(checkpoint))

                def score(c, d):
                    with torch.no_grad():
                        return model(torch.from_numpy(c), torch.from_numpy(d)).numpy()

                self.score = score

        @serve.batch(max_batch_size=RAY_MAX_BATCH, batch_wait_timeout_s=RAY_BATCH_WAIT_S)
        async def handle_batch(self, requests: list[tuple[np.ndarray, np.ndarray]]) -> list[bytes]:
            sizes = [len(c) for c, _ in requests]
            out = self.score(np.concatenate([c for c, _ in requests]), np.concatenate([d for _, d in requests]))
            return [part.tobytes() for part in np.split(out, np.cumsum(sizes)[:-1])]

        async def __call__(self, request: Request) -> Response:
            return Response(
                await self.handle_batch(_decode(await request.body())), media_type="application/octet-stream"
            )

    return Ranker.bind()


def _npz(categorical: np.ndarray, dense: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, categorical=categorical, dense=dense)
    return buffer.getvalue()


def _triton_body(categorical: np.ndarray, dense: np.ndarray) -> tuple[bytes, dict]:
    import tritonclient.http as httpclient

    inputs = []
    for name, array, dtype in (("categorical", categorical, "INT64"), ("dense", dense, "FP32")):
        tensor = httpclient.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput("probability", binary_data=True)]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return body, {"Inference-Header-Content-Length": str(json_size), "Content-Type": "application/octet-stream"}


async def _load(url: str, body: bytes, headers: dict, concurrency: int, seconds: float, rows: int) -> dict:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as session:

        async def worker():
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"{url}: HTTP {reply.status}")
                latencies.append(time.perf_counter() - start)

        for _ in range(3):  # warm-up
            async with session.post(url, data=body, headers=headers) as reply:
                await reply.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "rows_per_s": len(ms) * rows / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests": len(ms),
    }


def sweep(url: str, body: bytes, headers: dict, concurrencies: list[int], seconds: float, rows: int) -> list[dict]:
    return [asyncio.run(_load(url, body, headers, c, seconds, rows)) for c in concurrencies]


def triton_sweep(args, concurrencies: list[int], categorical, dense) -> list[dict]:
    with (
        console.status("Triton (Marquee) ..."),
        TritonServer(model_repository(), free_ports(), models=[RANKER_FP32.name]) as server,
    ):
        body, headers = _triton_body(categorical, dense)
        url = f"http://{server.http_url}/v2/models/{RANKER_FP32.name}/infer"
        return sweep(url, body, headers, concurrencies, args.seconds, args.rows)


def ray_sweeps(args, concurrencies: list[int], categorical, dense) -> dict[str, list[dict]]:
    """Run in .venv-peers (Ray Serve installed): both Ray Serve deployments, one at a time."""
    import ray
    from ray import serve

    repository = model_repository()
    onnx_path = repository / RANKER_FP32.name / "1" / RANKER_FP32.artifact
    stamp = json.loads((repository / RANKER_FP32.name / "1" / "marquee-export.json").read_text())
    ray.init(num_cpus=args.replicas, include_dashboard=False, log_to_driver=False, configure_logging=False)
    port = free_ports().http
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    results = {}
    for kind in ("onnxruntime", "pytorch"):
        with console.status(f"Ray Serve + {kind} ..."):
            app = _serve_app(kind, str(onnx_path), stamp["checkpoint"], args.replicas)
            serve.run(app, name=kind, route_prefix=f"/{kind}")
            url = f"http://127.0.0.1:{port}/{kind}"
            headers = {"Content-Type": "application/octet-stream"}
            body = _npz(categorical, dense)
            results[f"ray_serve_{kind}"] = sweep(url, body, headers, concurrencies, args.seconds, args.rows)
            serve.delete(kind)
    serve.shutdown()
    ray.shutdown()
    return results


def ray_in_peers_venv(args) -> dict[str, list[dict]]:
    """The Ray half, in the interpreter that has Ray Serve (it needs protobuf >= 6, which
    Marquee's tritonclient does not take)."""
    if not PEERS_PYTHON.is_file():
        raise SystemExit(f"{PEERS_PYTHON} is missing: run `.venv/bin/marquee perf setup --peers` first")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ray.json"
        forwarded = ["--rows", str(args.rows), "--concurrency", args.concurrency, "--seconds", str(args.seconds)]
        forwarded += ["--replicas", str(args.replicas), "--only", "ray", "--out", str(out)]
        env = os.environ | {"PYTHONPATH": str(Path.cwd())}
        subprocess.run([str(PEERS_PYTHON), "-m", "perf.bench_peer_ray", *forwarded], check=True, env=env)
        return json.loads(out.read_text())["sweeps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16, help="candidate rows per request")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=6.0, help="per load level")
    parser.add_argument("--p99-ms", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, default=os.cpu_count() or 1, help="Ray Serve replicas (cores)")
    parser.add_argument("--only", choices=("triton", "ray"), help="one half (the Ray half runs in .venv-peers)")
    parser.add_argument("--out", type=Path, default=Path("perf/reports/peer_ray.json"))
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    rng = np.random.default_rng(0)
    categorical = rng.integers(0, 8, (args.rows, 6)).astype(np.int64)
    dense = rng.standard_normal((args.rows, 6)).astype(np.float32)
    results = {}
    if args.only != "ray":
        results["triton"] = triton_sweep(args, concurrencies, categorical, dense)
    if args.only == "ray":
        results |= ray_sweeps(args, concurrencies, categorical, dense)
    elif args.only is None:
        results |= ray_in_peers_venv(args)

    best = {
        name: max((r for r in rows if r["p99_ms"] <= args.p99_ms), key=lambda r: r["rows_per_s"], default=None)
        for name, rows in results.items()
    }
    report = {
        "benchmark": "peer_ray",
        "machine": machine_info(),
        "rows_per_request": args.rows,
        "ray_serve": {
            "replicas": args.replicas,
            "max_batch_size": RAY_MAX_BATCH,
            "batch_wait_timeout_s": RAY_BATCH_WAIT_S,
            "max_ongoing_requests": 2 * RAY_MAX_BATCH,
        },
        "p99_target_ms": args.p99_ms,
        "sweeps": results,
        "best_under_target": best,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"FP32 ranker over HTTP, {args.rows} rows/request (rows/s, p99 ms)")
    table.add_column("system")
    for c in concurrencies:
        table.add_column(f"c={c}", justify="right")
    table.add_column(f"best rows/s, p99 <= {args.p99_ms:g} ms", justify="right")
    for name, rows in results.items():
        b = best[name]
        table.add_row(
            name,
            *(f"{r['rows_per_s']:,.0f} ({r['p99_ms']:.1f})" for r in rows),
            "-" if b is None else f"{b['rows_per_s']:,.0f} (c={b['concurrency']})",
        )
    console.print(table)
    console.print(f"report: {args.out}")


if __name__ == "__main__":
    main()
