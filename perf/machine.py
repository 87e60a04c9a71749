"""Describe the machine a measurement came from; every report carries this."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": metadata.version("onnxruntime"),
        "tritonserver": "2.51.0 (nvidia-pytriton " + metadata.version("nvidia-pytriton") + ")",
    }
