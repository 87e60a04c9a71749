"""Two-tower retrieval: a user tower and an item tower trained with in-batch softmax.

The item tower sees only content features (genre, popularity, age, duration), so a title
added today gets a sensible embedding without any interactions. The user tower sees the
user id, region and the genres of the recent history (looked up inside the graph, so a
request carries only item ids).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from export.ranker.data import N_GENRES
from export.recommend.catalogue import Catalogue, interaction_log, user_histories
from marquee.specs.recommend import N_REGIONS, SETTINGS

log = logging.getLogger(__name__)
POPULARITY_BUCKETS = 16
AGE_BUCKETS = 12
DURATIONS = np.array([0.4, 0.8, 1.5, 2.5])


@dataclass(frozen=True)
class TwoTowerConfig:
    n_items: int = SETTINGS.n_items
    seed: int = 0
    log_rows: int = 600_000
    epochs: int = 2
    batch_size: int = 1024
    learning_rate: float = 3e-3
    temperature: float = 0.1
    dim: int = SETTINGS.embedding_dim


def item_content(catalogue: Catalogue) -> np.ndarray:
    """int64 [n_items, 4]: genre, popularity bucket, age bucket, duration index."""
    world = catalogue.world
    log_pop = np.log1p(world.item_popularity)
    pop_bucket = np.minimum((log_pop / (log_pop.max() + 1e-9) * POPULARITY_BUCKETS).astype(int), POPULARITY_BUCKETS - 1)
    age_bucket = np.minimum((world.item_age / 0.5).astype(int), AGE_BUCKETS - 1)
    duration = np.abs(world.item_duration[:, None] - DURATIONS[None]).argmin(1)
    return np.stack([world.item_genre, pop_bucket, age_bucket, duration], 1).astype(np.int64)


class ItemTower(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        sizes = (N_GENRES, POPULARITY_BUCKETS, AGE_BUCKETS, len(DURATIONS))
        self.embeddings = nn.ModuleList(nn.Embedding(n, 16) for n in sizes)
        self.mlp = nn.Sequential(nn.Linear(16 * len(sizes), 64), nn.ReLU(), nn.Linear(64, dim))

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        x = torch.cat([emb(content[:, i]) for i, emb in enumerate(self.embeddings)], 1)
        return nn.functional.normalize(self.mlp(x), dim=1)


class UserTower(nn.Module):
    """Inputs as the served model takes them: user_id [B,1], region [B,1], history [B,H] (-1 padded)."""

    def __init__(self, dim: int, n_users: int, item_genre: np.ndarray):
        super().__init__()
        self.n_users = n_users
        self.register_buffer("item_genre", torch.from_numpy(item_genre.astype(np.int64)), persistent=True)
        self.user = nn.Embedding(n_users + 1, 32)  # last row: users the tower never saw
        self.region = nn.Embedding(N_REGIONS, 8)
        self.mlp = nn.Sequential(nn.Linear(32 + 8 + N_GENRES, 64), nn.ReLU(), nn.Linear(64, dim))

    def forward(self, user_id: torch.Tensor, region: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        user = user_id[:, 0]
        user = torch.where((user >= 0) & (user < self.n_users), user, torch.full_like(user, self.n_users))
        valid = (history >= 0) & (history < self.item_genre.shape[0])
        genres = self.item_genre[torch.where(valid, history, torch.zeros_like(history))]
        counts = (nn.functional.one_hot(genres, N_GENRES) * valid[..., None]).sum(1).float()
        genre_mix = counts / counts.sum(1, keepdim=True).clamp(min=1.0)
        x = torch.cat([self.user(user), self.region(region[:, 0]), genre_mix], 1)
        return nn.functional.normalize(self.mlp(x), dim=1)


def train_two_tower(catalogue: Catalogue, config: TwoTowerConfig, progress: Progress | None = None):
    torch.manual_seed(config.seed)
    world = catalogue.world
    log_rows = interaction_log(catalogue, config.log_rows, seed=config.seed + 21)
    positives = log_rows.clicked == 1
    users = torch.from_numpy(log_rows.categorical[positives, 0])
    items = torch.from_numpy(log_rows.categorical[positives, 2])
    histories = torch.from_numpy(user_histories(catalogue)[:, : SETTINGS.tower_history])
    regions = torch.from_numpy(world.user_region.astype(np.int64))
    content = torch.from_numpy(item_content(catalogue))

    user_tower = UserTower(config.dim, len(world.user_region), world.item_genre)
    item_tower = ItemTower(config.dim)
    optimiser = torch.optim.Adam([*user_tower.parameters(), *item_tower.parameters()], lr=config.learning_rate)
    steps = (len(users) + config.batch_size - 1) // config.batch_size
    task = progress.add_task("train two-tower", total=config.epochs * steps) if progress else None
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        order = torch.randperm(len(users), generator=generator)
        for step in range(steps):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            u, i = users[batch], items[batch]
            user_vectors = user_tower(u[:, None], regions[u][:, None], histories[u])
            item_vectors = item_tower(content[i])
            logits = user_vectors @ item_vectors.T / config.temperature
            # In-batch softmax; rows that share an item are not each other's negatives.
            same_item = i[:, None] == i[None, :]
            logits = logits.masked_fill(same_item & ~torch.eye(len(i), dtype=torch.bool), -1e9)
            loss = nn.functional.cross_entropy(logits, torch.arange(len(i)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if task is not None:
                progress.advance(task)
    log.info("two-tower: last batch loss %.3f", loss.item())
    user_tower.eval()
    item_tower.eval()
    with torch.no_grad():
        item_matrix = item_tower(content).numpy().astype(np.float32)
    return user_tower, item_matrix
