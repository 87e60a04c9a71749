"""Shared fixtures: a small ranker exported once per session, and a real tritonserver."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export.ranker.model import RankerArchitecture
from export.ranker.train import TrainingConfig
from marquee import render
from marquee.specs.ranker import RANKER_BY_PRECISION

# Each moderation area keeps its session fixtures in its own module.
pytest_plugins = [
    "tests.fixtures_moderation_text",
    "tests.fixtures_moderation_image",
    "tests.fixtures_moderation_queue",
    "tests.fixtures_whisper",
    "tests.fixtures_audio",
    "tests.fixtures_video",
    "tests.fixtures_fuzz",
]

# Small enough to train in seconds, large enough to learn the planted preferences.
TINY_TRAINING = TrainingConfig(
    train_rows=40_000,
    holdout_rows=20_000,
    epochs=1,
    arch=RankerArchitecture(embedding_dim=8, cross_layers=2, deep_layers=(64, 32)),
)


def _has_cuda() -> bool:
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU and onnxruntime-gpu; this host is CPU-only")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory, monkeypatch_session) -> Path:
    root = tmp_path_factory.mktemp("marquee-cache")
    monkeypatch_session.setenv("MARQUEE_CACHE", str(root))
    project_cache = Path(__file__).resolve().parent.parent / ".marquee"
    # perf_analyzer and its glibc runtime are large downloads; share the project's copy.
    if (project_cache / "perf_analyzer").is_dir():
        (root / "perf_analyzer").symlink_to(project_cache / "perf_analyzer")
    # The fine-tuned text classifier takes minutes of CPU; its file name is the hash of
    # everything it was trained from, so a project copy with the same name is the same model.
    (root / "checkpoints").mkdir()
    for checkpoint in (project_cache / "checkpoints").glob("moderation-text-*.safetensors"):
        (root / "checkpoints" / checkpoint.name).symlink_to(checkpoint)
    return root


@pytest.fixture(scope="session")
def monkeypatch_session():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="session")
def tiny_checkpoint(cache_root) -> Path:
    from export.ranker.pipeline import default_checkpoint

    return default_checkpoint(TINY_TRAINING)


@pytest.fixture(scope="session")
def exported_repository(tmp_path_factory, tiny_checkpoint) -> Path:
    """A model repository with the rendered ranker configs and a tiny ranker exported."""
    from export.ranker.pipeline import export_ranker

    repository = tmp_path_factory.mktemp("model_repository")
    specs = list(RANKER_BY_PRECISION.values())
    render.write(specs, repository)
    export_ranker(repository, tuple(RANKER_BY_PRECISION), checkpoint=tiny_checkpoint)
    return repository


@pytest.fixture
def copy_of_repository(exported_repository, tmp_path) -> Path:
    target = tmp_path / "repository"
    shutil.copytree(exported_repository, target)
    return target
