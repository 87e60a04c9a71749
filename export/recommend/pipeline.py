"""`marquee export recommend`: catalogue -> two-tower -> user_tower + candidates ONNX ->
feature table + route model -> model_repository, each checked against its reference."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.progress import Progress

from export import artifacts
from export.onnx_export import export_to_onnx
from export.recommend import candidates as candidates_module
from export.recommend import catalogue as catalogue_module
from export.recommend import two_tower as two_tower_module
from export.recommend.candidates import (
    biased_item_vectors,
    build_candidates_model,
    build_ivf_index,
    candidate_bias,
    exact_top_k,
    ivf_search,
)
from export.recommend.catalogue import build_catalogue, user_histories, write_feature_table
from export.recommend.two_tower import TwoTowerConfig, train_two_tower
from export.route_install import install_route
from export.validate import ValidationReport
from marquee.rollout.files import PROJECT_EXPERIMENTS
from marquee.routes import manifest
from marquee.specs.recommend import (
    CANDIDATES,
    CANDIDATES_IVF,
    RECOMMEND,
    RECOMMEND_MODELS,
    RETRIEVE,
    RETRIEVE_IVF,
    SETTINGS,
    USER_TOWER,
)

log = logging.getLogger(__name__)
SOURCES = [Path(m.__file__) for m in (candidates_module, catalogue_module, two_tower_module)] + [
    Path(__file__),
    *manifest.RECOMMEND.sources(),
    *manifest.CANDIDATES_IVF.sources(),
]
VALIDATION_USERS = 256


def _input_hash(config: TwoTowerConfig) -> str:
    return artifacts.content_hash(
        json.dumps(asdict(config), sort_keys=True),
        repr(RECOMMEND_MODELS),
        artifacts.toolchain_fingerprint(),
        *SOURCES,
    )


def _version_dir(repository: Path, spec) -> Path:
    return repository / spec.name / str(spec.version)


def export_recommend(
    repository: Path,
    n_items: int = SETTINGS.n_items,
    force: bool = False,
    progress: Progress | None = None,
    config: TwoTowerConfig | None = None,
) -> bool:
    """Export the route's models; returns False when everything was already current."""
    config = config or TwoTowerConfig(n_items=n_items)
    n_items = config.n_items
    input_hash = _input_hash(config)
    if not force and all(
        artifacts.is_current(_version_dir(repository, spec), input_hash, spec.artifact)
        for spec in (USER_TOWER, CANDIDATES, CANDIDATES_IVF, RECOMMEND)
    ):
        return False
    catalogue = build_catalogue(n_items)
    user_tower, item_matrix = train_two_tower(catalogue, config, progress)
    bias = candidate_bias(catalogue.world.item_popularity)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        export_to_onnx(user_tower, _example_tower_inputs(catalogue, 4), USER_TOWER, staged / "user_tower.onnx")
        build_candidates_model(item_matrix, bias, config.temperature, SETTINGS.top_k, staged / "candidates.onnx")
        build_ivf_index(biased_item_vectors(item_matrix, bias, config.temperature), staged / "index.faiss")
        report = _validate(catalogue, user_tower, item_matrix, bias, config.temperature, staged)
        report.figures.update(retrieval_quality(catalogue, staged / "user_tower.onnx", staged / "candidates.onnx"))
        log.info("%s", report.summary())
        report.raise_if_failed()
        stamp = {"input_hash": input_hash, "n_items": n_items, "validation": report.figures}
        artifacts.install(staged / "user_tower.onnx", _version_dir(repository, USER_TOWER), USER_TOWER.artifact, stamp)
        artifacts.install(staged / "candidates.onnx", _version_dir(repository, CANDIDATES), CANDIDATES.artifact, stamp)
        ivf_files = {name: staged / name for name in ("index.faiss", "ivf.json")}
        install_route(manifest.CANDIDATES_IVF, _version_dir(repository, CANDIDATES_IVF), stamp, ivf_files)
        _install_route(catalogue, repository, staged, stamp)
    for ensemble in (RETRIEVE, RETRIEVE_IVF):  # ensembles need an (empty) version directory
        _version_dir(repository, ensemble).mkdir(parents=True, exist_ok=True)
    return True


def _install_route(catalogue, repository: Path, staged: Path, stamp: dict) -> None:
    version_dir = _version_dir(repository, RECOMMEND)
    write_feature_table(catalogue, staged / "features.npz")
    data: dict = {"features.npz": staged / "features.npz"}
    if not (version_dir / RECOMMEND.parameters["blocklist"]).exists():  # an operator's edits are kept
        data[RECOMMEND.parameters["blocklist"]] = "# item ids blocked by moderation, one per line; re-read on change\n"
    if not (version_dir / RECOMMEND.parameters["experiments"]).exists():  # `marquee rollout` owns it from here
        data[RECOMMEND.parameters["experiments"]] = PROJECT_EXPERIMENTS
    install_route(manifest.RECOMMEND, version_dir, stamp, data)


def _example_tower_inputs(catalogue, users: int) -> dict[str, torch.Tensor]:
    user_ids = np.arange(users, dtype=np.int64)
    histories = user_histories(catalogue)[:users, : SETTINGS.tower_history]
    regions = catalogue.world.user_region[:users].astype(np.int64)
    return {
        "user_id": torch.from_numpy(user_ids[:, None]),
        "region": torch.from_numpy(regions[:, None]),
        "history": torch.from_numpy(histories),
    }


def _validate(catalogue, user_tower, item_matrix, bias, temperature, staged: Path) -> ValidationReport:
    report = ValidationReport("recommend (user_tower, candidates)")
    feeds = {name: tensor.numpy() for name, tensor in _example_tower_inputs(catalogue, VALIDATION_USERS).items()}
    feeds["user_id"][-1, 0] = -7  # a user the tower never saw
    feeds["history"][-2, :] = -1  # a user with no history
    with torch.no_grad():
        reference = user_tower(*(torch.from_numpy(feeds[k]) for k in ("user_id", "region", "history"))).numpy()
    tower = ort.InferenceSession(str(staged / "user_tower.onnx"), providers=["CPUExecutionProvider"])
    embedding = tower.run(None, feeds)[0]
    report.close_to("user_embedding", reference, embedding, USER_TOWER.tolerance.atol)
    search = ort.InferenceSession(str(staged / "candidates.onnx"), providers=["CPUExecutionProvider"])
    served_ids, served_scores = search.run(["candidate_ids", "candidate_scores"], {"user_embedding": embedding})
    exact_ids, exact_scores = exact_top_k(embedding, item_matrix, bias, temperature, SETTINGS.top_k)
    report.close_to("candidate_scores", exact_scores, served_scores, 1e-3)
    report.at_most("candidate_ids_missed_vs_exact", 1.0 - _recall(served_ids, exact_ids), 0.002)
    nprobe, recall = _tune_nprobe(staged / "index.faiss", embedding, exact_ids, CANDIDATES_IVF.tolerance.min_recall)
    (staged / "ivf.json").write_text(json.dumps({"nprobe": nprobe, f"recall_at_{SETTINGS.top_k}": recall}) + "\n")
    report.at_most("ivf_recall_shortfall", 1.0 - recall, 1.0 - CANDIDATES_IVF.tolerance.min_recall)
    report.figures.update(ivf_recall_at_k=recall, ivf_nprobe=nprobe)
    return report


def retrieval_quality(catalogue, tower_path: Path, candidates_path: Path, clicks: int = 2000) -> dict:
    """Share of held-out clicks whose title is among the K candidates, against popularity.

    A figure to report, not a gate: in this synthetic world exposure follows popularity,
    so popularity alone is a strong baseline for "the next click".
    """
    log_rows = catalogue.world.sample(clicks * 8, seed=4242)
    clicked = np.flatnonzero(log_rows.clicked == 1)[:clicks]
    users, items = log_rows.categorical[clicked, 0], log_rows.categorical[clicked, 2]
    histories = user_histories(catalogue)[users, : SETTINGS.tower_history]
    tower = ort.InferenceSession(str(tower_path), providers=["CPUExecutionProvider"])
    embedding = tower.run(
        None,
        {
            "user_id": users[:, None],
            "region": catalogue.world.user_region[users].astype(np.int64)[:, None],
            "history": histories,
        },
    )[0]
    search = ort.InferenceSession(str(candidates_path), providers=["CPUExecutionProvider"])
    candidates = np.concatenate(
        [
            search.run(["candidate_ids"], {"user_embedding": embedding[s : s + 256]})[0]
            for s in range(0, len(users), 256)
        ]
    )
    popular = np.argsort(-catalogue.world.item_popularity, kind="stable")[: SETTINGS.top_k]
    return {
        f"next_click_in_top_{SETTINGS.top_k}_retrieval": float((candidates == items[:, None]).any(1).mean()),
        f"next_click_in_top_{SETTINGS.top_k}_popularity": float(np.isin(items, popular).mean()),
    }


def _recall(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    k = exact_ids.shape[1]
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(approx_ids, exact_ids, strict=True)]))


def _tune_nprobe(index_path: Path, queries: np.ndarray, exact_ids: np.ndarray, min_recall: float):
    """The fewest IVF lists to probe that reach `min_recall` against exact search."""
    for nprobe in (8, 16, 32, 64, 128, 256):
        recall = _recall(ivf_search(index_path, queries, SETTINGS.top_k, nprobe)[0], exact_ids)
        if recall >= min_recall:
            break
    return nprobe, recall
