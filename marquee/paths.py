"""Where things live. Overridable through environment variables for tests and deployments."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def model_repository() -> Path:
    return Path(os.environ.get("MARQUEE_MODEL_REPOSITORY", PROJECT_ROOT / "model_repository"))


def cache_dir() -> Path:
    """Checkpoints, the assembled backend directory, perf_analyzer's runtime, logs."""
    return Path(os.environ.get("MARQUEE_CACHE", PROJECT_ROOT / ".marquee"))


def admin_key_file() -> Path:
    """The generated admin key for the restricted Triton APIs (mode 0600)."""
    return cache_dir() / "admin.key"
