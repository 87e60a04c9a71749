"""Train the ranker briefly on the synthetic log and save a self-describing checkpoint."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from export.ranker.data import Interactions, SyntheticWorld, roc_auc
from export.ranker.model import DCNRanker, RankerArchitecture
from marquee.errors import CheckpointError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    world_seed: int = 0
    train_rows: int = 400_000
    holdout_rows: int = 50_000
    epochs: int = 3
    batch_size: int = 1024
    learning_rate: float = 2e-3
    seed: int = 0
    arch: RankerArchitecture = field(default_factory=RankerArchitecture)

    # Sample seeds are derived so train and holdout never share impressions.
    @property
    def train_sample_seed(self) -> int:
        return self.world_seed * 1000 + 1

    @property
    def holdout_sample_seed(self) -> int:
        return self.world_seed * 1000 + 2

    def to_dict(self) -> dict:
        return {**asdict(self), "arch": self.arch.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainingConfig:
        return cls(**{**d, "arch": RankerArchitecture.from_dict(d["arch"])})


def holdout_set(config: TrainingConfig) -> Interactions:
    return SyntheticWorld(config.world_seed).sample(config.holdout_rows, config.holdout_sample_seed)


def predict(model: DCNRanker, data: Interactions, batch_size: int = 8192) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            stop = start + batch_size
            out.append(model(torch.from_numpy(data.categorical[start:stop]), torch.from_numpy(data.dense[start:stop])))
    return torch.cat(out).numpy()


def train(config: TrainingConfig, progress: Progress | None = None) -> tuple[DCNRanker, dict]:
    torch.manual_seed(config.seed)
    world = SyntheticWorld(config.world_seed)
    data = world.sample(config.train_rows, config.train_sample_seed)
    model = DCNRanker(config.arch)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    categorical, dense = torch.from_numpy(data.categorical), torch.from_numpy(data.dense)
    clicked = torch.from_numpy(data.clicked)[:, None]
    steps_per_epoch = (len(data) + config.batch_size - 1) // config.batch_size
    generator = torch.Generator().manual_seed(config.seed)
    task = progress.add_task("train ranker", total=config.epochs * steps_per_epoch) if progress else None
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(data), generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            loss = loss_fn(model.logits(categorical[batch], dense[batch]), clicked[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if task is not None:
                progress.advance(task)
        log.info("epoch %d: last batch loss %.4f", epoch + 1, loss.item())
    metrics = evaluate(model, holdout_set(config))
    log.info("holdout AUC %.4f (oracle %.4f)", metrics["holdout_auc"], metrics["oracle_auc"])
    return model, metrics


def evaluate(model: DCNRanker, holdout: Interactions) -> dict:
    return {
        "holdout_auc": roc_auc(holdout.clicked, predict(model, holdout)),
        "oracle_auc": roc_auc(holdout.clicked, holdout.true_probability),
        "holdout_rows": len(holdout),
    }


def save_checkpoint(model: DCNRanker, config: TrainingConfig, metrics: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "format": "marquee-ranker/1",
            "training": config.to_dict(),
            "metrics": metrics,
            "state_dict": model.state_dict(),
        },
        tmp,
    )
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written checkpoint
    return path


def load_checkpoint(path: Path) -> tuple[DCNRanker, TrainingConfig, dict]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "marquee-ranker/1":
        raise CheckpointError(f"{path}: not a Marquee ranker checkpoint (expected format `marquee-ranker/1`)")
    config = TrainingConfig.from_dict(payload["training"])
    model = DCNRanker(config.arch)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, config, payload["metrics"]
