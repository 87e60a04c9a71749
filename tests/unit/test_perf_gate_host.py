"""The perf gate picks its budgets from the host: `gpu` budgets where a GPU was found,
the CPU ratios (and `cpu_absolute` for routes) otherwise. The host is data here, as
perf.machine.accelerator() describes it; no GPU is needed, and none has ever been used:
the GPU branch has never run on a real GPU host."""

from __future__ import annotations

import pytest

from perf.gate import GPU_BASELINE_NOTE, ModelMeasurement, budget_set, evaluate, needs_reference
from perf.machine import ACCELERATOR_ENV, CPU_ONLY, accelerator, cpu_only, gpu_host, machine_info, parse_nvidia_smi

H200_LINE = "NVIDIA H200, 143771 MiB, 560.35.03"
GPU_HOST = gpu_host(parse_nvidia_smi(H200_LINE), "test")
CPU_HOST = cpu_only("test")

# As perf/budgets.py renders them: every entry has `gpu`; models `cpu` ratios, routes `cpu_absolute`.
BUDGETS = {
    "noise_margin": 0.25,
    "models": {
        "ranker": {
            "reference_onnx": "ranker/1/model.onnx",
            "load": {"batch_size": 256, "concurrency": 1},
            "gpu": {"perf_latency_p99": {"max": 5000}},
            "cpu": {"perf_latency_p99_ratio": {"max": 6.0}, "perf_throughput_ratio": {"min": 0.3}},
        },
        "route": {
            "load": {"batch_size": 1, "concurrency": 4},
            "gpu": {"perf_latency_p99": {"max": 25_000}},
            "cpu_absolute": {"perf_latency_p99": {"max": 30_000}},
        },
    },
}


def measurement(model: str, p99_us: float, throughput: float = 600.0, reference_ms: float | None = 1.0):
    served = {
        "perf_latency_p99": p99_us,
        "perf_throughput": throughput,
        "perf_server_queue_us": 100.0,
        "perf_server_compute_input_us": 10.0,
        "perf_server_compute_infer_us": 1000.0,
        "perf_server_compute_output_us": 10.0,
        "perf_network_us": 50.0,
        "perf_client_send_us": 1.0,
        "perf_client_recv_us": 1.0,
    }
    rows_per_s = None if reference_ms is None else 1000.0
    return ModelMeasurement(model, 256, 1, served, reference_ms, rows_per_s, reference_ms)


def test_nvidia_smi_lines_become_the_gpu_description():
    assert GPU_HOST == {
        "kind": "gpu",
        "description": "1x NVIDIA H200 (143771 MiB, driver 560.35.03)",
        "gpus": [{"name": "NVIDIA H200", "memory_total": "143771 MiB", "driver_version": "560.35.03"}],
        "source": "test",
    }
    two = gpu_host(parse_nvidia_smi(f"{H200_LINE}\n{H200_LINE}\n\n"), "test")
    assert two["description"] == "2x NVIDIA H200 (143771 MiB, driver 560.35.03)"


def test_the_host_picks_the_budget_set():
    assert budget_set(GPU_HOST) == "gpu"
    assert budget_set(CPU_HOST) == "cpu"
    with pytest.raises(ValueError, match="host kind 'tpu'; allowed: 'gpu', 'cpu'"):
        budget_set({"kind": "tpu"})


def test_no_cpu_reference_is_measured_on_a_gpu_host():
    assert needs_reference(BUDGETS["models"]["ranker"], "cpu")
    assert not needs_reference(BUDGETS["models"]["ranker"], "gpu")
    assert not needs_reference(BUDGETS["models"]["route"], "cpu")


def test_a_gpu_host_judges_the_absolute_gpu_budgets():
    # 4 ms p99, no CPU reference: within the ranker's 5 ms GPU budget.
    within = [measurement("ranker", 4000, reference_ms=None), measurement("route", 20_000, reference_ms=None)]
    result = evaluate(within, BUDGETS, baseline=None, host=GPU_HOST)
    assert result.passed, result.breaches
    assert result.budget_set == "gpu" and result.notes == [GPU_BASELINE_NOTE]

    slow = [measurement("ranker", 7000, reference_ms=None), measurement("route", 27_000, reference_ms=None)]
    result = evaluate(slow, BUDGETS, baseline=None, host=GPU_HOST)
    assert [b.split(";")[0] for b in result.breaches] == [
        "ranker: perf_latency_p99 7,000 > gpu budget 5,000",
        "route: perf_latency_p99 27,000 > gpu budget 25,000",  # within its 30 ms CPU budget
    ]
    assert "most time in server compute" in result.breaches[0]


def test_a_gpu_host_ignores_the_cpu_ratios_and_the_cpu_baseline():
    # A ratio of 9 breaks the CPU budget (6) and the baseline; on a GPU host neither applies.
    ranker = measurement("ranker", 4000, throughput=100.0, reference_ms=0.44)
    baseline = {"ranker": {"perf_latency_p99_ratio": 2.0, "perf_throughput_ratio": 0.6}}
    assert evaluate([ranker], BUDGETS, baseline, host=GPU_HOST).passed
    on_cpu = evaluate([ranker], BUDGETS, baseline, host=CPU_HOST)
    assert on_cpu.budget_set == "cpu" and on_cpu.notes == []
    assert any("perf_latency_p99_ratio 9.09 > budget 6.0" in b for b in on_cpu.breaches)
    assert any("regressed from baseline 2.00" in b for b in on_cpu.breaches)


def test_a_cpu_host_judges_ratios_and_route_budgets_as_before():
    ranker, route = measurement("ranker", 2000), measurement("route", 27_000, reference_ms=None)
    assert evaluate([ranker, route], BUDGETS, None, host=CPU_HOST).passed
    # Without a host the gate judges the CPU budgets, as it did before hosts were detected.
    assert evaluate([ranker, route], BUDGETS, None).budget_set == "cpu"


def test_a_gpu_host_needs_gpu_budgets_for_every_model():
    budgets = {"models": {"route": {"load": {}, "cpu_absolute": {"perf_latency_p99": {"max": 30_000}}}}}
    with pytest.raises(ValueError, match="model `route` has no `gpu` budgets, and this host has a GPU"):
        evaluate([measurement("route", 1000, reference_ms=None)], budgets, None, host=GPU_HOST)


def test_the_report_names_the_host_and_the_budget_set():
    report = evaluate([measurement("ranker", 4000, reference_ms=None)], BUDGETS, None, host=GPU_HOST).to_json()
    assert report["host"] == GPU_HOST and report["budget_set"] == "gpu"
    report = evaluate([measurement("ranker", 2000)], BUDGETS, None, host=CPU_HOST).to_json()
    assert report["host"]["description"] == CPU_ONLY and report["budget_set"] == "cpu"


def test_the_override_names_a_gpu_or_forces_cpu(monkeypatch):
    monkeypatch.setenv(ACCELERATOR_ENV, H200_LINE)
    found = accelerator()
    assert found["kind"] == "gpu" and found["gpus"] == GPU_HOST["gpus"]
    assert machine_info()["accelerator"] == GPU_HOST["description"]
    monkeypatch.setenv(ACCELERATOR_ENV, "cpu")
    assert accelerator()["description"] == CPU_ONLY
    assert machine_info()["gpu"] is None


def test_without_nvidia_smi_the_host_is_cpu_only(monkeypatch, tmp_path):
    monkeypatch.delenv(ACCELERATOR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH, so no nvidia-smi
    found = accelerator()
    assert found == {"kind": "cpu", "description": CPU_ONLY, "gpus": [], "source": "nvidia-smi not on PATH"}


def test_a_failing_nvidia_smi_is_reported_not_trusted(monkeypatch, tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n"
    )
    fake.chmod(0o755)
    monkeypatch.delenv(ACCELERATOR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = accelerator()
    assert found["kind"] == "cpu" and found["source"].startswith("nvidia-smi exited 9: NVIDIA-SMI has failed")


def test_a_working_nvidia_smi_is_asked_for_name_memory_and_driver(monkeypatch, tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--query-gpu=name,memory.total,driver_version" ] && [ "$2" = "--format=csv,noheader" ] || exit 2\n'
        f"echo '{H200_LINE}'\n"
    )
    fake.chmod(0o755)
    monkeypatch.delenv(ACCELERATOR_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert accelerator() == {**GPU_HOST, "source": "nvidia-smi"}
