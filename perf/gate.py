"""`marquee perf gate`: a short measurement of each budgeted model, checked against
`perf/budgets.yaml` and against the committed baseline. Any breach -> non-zero exit.

On a CPU host each served figure is divided by a reference measured in the same run
(the same ONNX file, in-process, same thread budget), so host speed cancels out and the
gate catches what Marquee adds: serving overhead, queueing, a slow model.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from perf.perf_analyzer import PerfAnalyzer
from perf.results import PerfRow

BUDGETS = Path(__file__).resolve().parent / "budgets.yaml"
BASELINE = Path(__file__).resolve().parent / "baselines" / "cpu.json"


@dataclass
class ModelMeasurement:
    model: str
    batch_size: int
    concurrency: int
    served: dict  # PerfRow fields
    reference_batch_ms: float
    reference_rows_per_s: float

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "perf_latency_p99_ratio": self.served["perf_latency_p99"] / 1000 / self.reference_batch_ms,
            "perf_throughput_ratio": self.served["perf_throughput"] / self.reference_rows_per_s,
        }

    def where_time_went(self) -> str:
        s = self.served
        parts = {
            "server queue": s["perf_server_queue_us"],
            "server compute (input+infer+output)": s["perf_server_compute_input_us"]
            + s["perf_server_compute_infer_us"]
            + s["perf_server_compute_output_us"],
            "network + server send/recv": s["perf_network_us"],
            "client send/recv": s["perf_client_send_us"] + s["perf_client_recv_us"],
        }
        worst = max(parts, key=parts.get)
        listing = ", ".join(f"{k} {v / 1000:.2f} ms" for k, v in parts.items())
        return f"most time in {worst} ({listing}); in-process reference {self.reference_batch_ms:.2f} ms per batch"


@dataclass
class GateResult:
    measurements: list[ModelMeasurement]
    breaches: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.breaches

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "breaches": self.breaches,
            "models": {m.model: {**asdict(m), "ratios": m.ratios} for m in self.measurements},
        }


def load_budgets(path: Path = BUDGETS) -> dict:
    budgets = yaml.safe_load(Path(path).read_text())
    for name, entry in budgets.get("models", {}).items():
        for key in ("reference_onnx", "load", "cpu"):
            if key not in entry:
                raise ValueError(f"{path}: model `{name}` lacks `{key}`")
    return budgets


def reference_speed(onnx_path: Path, batch_size: int, seconds: float = 1.5) -> tuple[float, float]:
    """(ms per batch, rows/s) of the ONNX file run in-process on one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: _zeros(i, batch_size) for i in session.get_inputs()}
    session.run(None, feeds)
    timings = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(None, feeds)
        timings.append(time.perf_counter() - start)
    batch_ms = statistics.median(timings) * 1000
    return batch_ms, batch_size / (batch_ms / 1000)


def _zeros(node, batch_size: int) -> np.ndarray:
    dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}[node.type]
    shape = [batch_size if not isinstance(d, int) else d for d in node.shape]
    return np.zeros(shape, dtype)


# Zero-filled requests, like the in-process reference: perf_analyzer's random bytes make
# NaNs and denormals, which change ONNX Runtime's speed and would muddy the ratio.
ZERO_DATA = ("--input-data", "zero")


def measure_served(analyzer: PerfAnalyzer, grpc_url: str, model: str, batch: int, concurrency: int) -> PerfRow:
    (row,) = analyzer.measure(
        model,
        grpc_url,
        batch_size=batch,
        concurrency=str(concurrency),
        interval_ms=1500,
        stability_percent=30,
        max_trials=8,
        extra=ZERO_DATA,
        timeout_s=300,
    )
    return row


def evaluate(measurements: list[ModelMeasurement], budgets: dict, baseline: dict | None) -> GateResult:
    """Pure: budgets and baseline in, breaches out (each naming where the time went)."""
    result = GateResult(measurements)
    margin = float(budgets.get("noise_margin", 0.25))
    for m in measurements:
        ratios = m.ratios
        for metric, bound in budgets["models"][m.model]["cpu"].items():
            value = ratios[metric]
            if "max" in bound and value > bound["max"]:
                result.breaches.append(
                    f"{m.model}: {metric} {value:.2f} > budget {bound['max']}; {m.where_time_went()}"
                )
            if "min" in bound and value < bound["min"]:
                result.breaches.append(
                    f"{m.model}: {metric} {value:.2f} < budget {bound['min']}; {m.where_time_went()}"
                )
        base = (baseline or {}).get(m.model, {})
        for metric, value in ratios.items():
            if metric not in base:
                continue
            worse = value > base[metric] * (1 + margin) if "latency" in metric else value < base[metric] * (1 - margin)
            if worse:
                result.breaches.append(
                    f"{m.model}: {metric} {value:.2f} regressed from baseline {base[metric]:.2f} "
                    f"(noise margin {margin:.0%}); {m.where_time_went()}"
                )
    return result


def run_gate(
    analyzer: PerfAnalyzer,
    grpc_url: str,
    repository: Path,
    budgets: dict,
    baseline: dict | None,
    served_names: dict[str, str] | None = None,
) -> GateResult:
    """Measure every budgeted model. `served_names` maps a budget entry to the model name
    actually served (a test serves a deliberately slowed stand-in under another name)."""
    measurements = []
    for name, entry in budgets["models"].items():
        load = entry["load"]
        batch_ms, rows_per_s = reference_speed(repository / entry["reference_onnx"], load["batch_size"])
        served = measure_served(
            analyzer, grpc_url, (served_names or {}).get(name, name), load["batch_size"], load["concurrency"]
        )
        measurements.append(
            ModelMeasurement(name, load["batch_size"], load["concurrency"], asdict(served), batch_ms, rows_per_s)
        )
    return evaluate(measurements, budgets, baseline)


def read_baseline(path: Path = BASELINE) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_baseline(result: GateResult, path: Path = BASELINE) -> Path:
    from perf.machine import machine_info

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {m.model: m.ratios for m in result.measurements} | {"_machine": machine_info()}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
