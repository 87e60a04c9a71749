"""Describe the machine a measurement came from; every report carries this.

The accelerator is found without importing a CUDA library: `nvidia-smi`, where it is on
PATH and answers, lists the GPUs; otherwise the host is "none (CPU only)". Set
MARQUEE_ACCELERATOR to override what is found: `cpu` (or `none`) for a CPU-only host, or
nvidia-smi's CSV line(s) ("NVIDIA H200, 143771 MiB, 560.35.03") for a GPU host. The GPU
branch has never run here: this project's hosts have no GPU.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata

ACCELERATOR_ENV = "MARQUEE_ACCELERATOR"
CPU_ONLY = "none (CPU only)"
NVIDIA_SMI_QUERY = ("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
NVIDIA_SMI_TIMEOUT_S = 15


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs since boot, from /proc/stat; (0, 0) where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    # already inside user, so the total stops at steal.
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Share of CPU time the hypervisor gave to other guests between two cpu_times():
    work on a shared VM's neighbours, which no in-host reference can cancel out."""
    total = after[1] - before[1]
    return None if total <= 0 else 100.0 * (after[0] - before[0]) / total


def parse_nvidia_smi(text: str) -> list[dict]:
    """GPUs from `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader`."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if not fields[0]:
            continue
        fields += [None] * (3 - len(fields))
        gpus.append({"name": fields[0], "memory_total": fields[1], "driver_version": fields[2]})
    return gpus


def describe_gpus(gpus: list[dict]) -> str:
    """'1x NVIDIA H200 (143771 MiB, driver 560.35.03)'; different models are listed in turn."""
    counts: dict[tuple, int] = {}
    for gpu in gpus:
        key = (gpu["name"], gpu["memory_total"], gpu["driver_version"])
        counts[key] = counts.get(key, 0) + 1
    parts = []
    for (name, memory, driver), count in counts.items():
        details = ", ".join(d for d in (memory, f"driver {driver}" if driver else None) if d)
        parts.append(f"{count}x {name}" + (f" ({details})" if details else ""))
    return "; ".join(parts)


def cpu_only(source: str) -> dict:
    """A host without a GPU; `source` says how that was found."""
    return {"kind": "cpu", "description": CPU_ONLY, "gpus": [], "source": source}


def gpu_host(gpus: list[dict], source: str) -> dict:
    """A host with these GPUs (parse_nvidia_smi's dicts)."""
    return {"kind": "gpu", "description": describe_gpus(gpus), "gpus": gpus, "source": source}


def _from_override(value: str) -> dict:
    source = f"{ACCELERATOR_ENV}={value}"
    if value.strip().lower() in ("", "cpu", "none"):
        return cpu_only(source)
    return gpu_host(parse_nvidia_smi(value.replace(";", "\n")), source)


def _from_nvidia_smi() -> dict:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return cpu_only("nvidia-smi not on PATH")
    try:
        answer = subprocess.run(
            [executable, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return cpu_only(f"nvidia-smi failed: {error}")
    if answer.returncode != 0:
        said = (answer.stderr or answer.stdout).strip().splitlines()
        return cpu_only(f"nvidia-smi exited {answer.returncode}: {said[0] if said else 'no output'}")
    gpus = parse_nvidia_smi(answer.stdout)
    return gpu_host(gpus, "nvidia-smi") if gpus else cpu_only("nvidia-smi listed no GPU")


def accelerator() -> dict:
    """The host's accelerator, as data every report and the perf gate carry:
    {"kind": "gpu" | "cpu", "description": str, "gpus": [{name, memory_total,
    driver_version}], "source": where it was found}."""
    override = os.environ.get(ACCELERATOR_ENV)
    if override is not None:
        return _from_override(override)
    return _from_nvidia_smi()


def accelerator_label(machine: dict) -> str:
    """What a report prints for a `machine_info()` (also one recorded before `accelerator` existed)."""
    return machine.get("accelerator") or machine.get("gpu") or CPU_ONLY


def machine_info() -> dict:
    found = accelerator()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": found["description"] if found["kind"] == "gpu" else None,
        "accelerator": found["description"],
        "accelerator_source": found["source"],
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": metadata.version("onnxruntime"),
        "tritonserver": "2.51.0 (nvidia-pytriton " + metadata.version("nvidia-pytriton") + ")",
        # Other work on the host when the report began (1, 5, 15 minutes): a shared host's
        # load moves every figure, so a report says what it was measured beside.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def report_header(benchmark: str, load_before: tuple[float, ...]) -> dict:
    """The fields every report opens with: what, when, on what machine, under what load
    (the 1/5/15-minute load averages before the run, and now)."""
    from datetime import UTC, datetime

    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
