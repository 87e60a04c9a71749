"""The serving catalogue: the ranker's world grown to N titles, with availability and histories.

Item features live server-side (in the route's feature table), so a request carries only
user id, region, recent history and context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.ranker.data import SyntheticWorld
from marquee.specs.recommend import N_REGIONS

AVAILABILITY = 0.75  # chance that a title is licensed in a given region
HISTORY_LENGTH = 50


@dataclass
class Catalogue:
    world: SyntheticWorld
    available: np.ndarray  # uint8 [n_items], bit r set = available in region r

    @property
    def n_items(self) -> int:
        return self.world.n_items

    def available_in(self, region: int) -> np.ndarray:
        return (self.available >> np.uint8(region)) & 1 == 1


def build_catalogue(n_items: int, seed: int = 0) -> Catalogue:
    world = SyntheticWorld(seed).with_new_titles(n_items, seed=seed + 1)
    rng = np.random.default_rng([seed, n_items, 7])
    bits = rng.random((n_items, N_REGIONS)) < AVAILABILITY
    available = (bits * (1 << np.arange(N_REGIONS))).sum(1).astype(np.uint8)
    return Catalogue(world, available)


def interaction_log(catalogue: Catalogue, rows: int, seed: int):
    return catalogue.world.sample(rows, seed)


def user_histories(catalogue: Catalogue, rows: int = 400_000, seed: int = 11) -> np.ndarray:
    """Each user's most recent clicked titles, newest first, -1 padded: int64 [n_users, 50]."""
    log = interaction_log(catalogue, rows, seed)
    clicked = log.clicked == 1
    users, items = log.categorical[clicked, 0], log.categorical[clicked, 2]
    n_users = len(catalogue.world.user_region)
    histories = np.full((n_users, HISTORY_LENGTH), -1, np.int64)
    order = np.argsort(users, kind="stable")  # stable: later impressions stay later
    users, items = users[order], items[order]
    starts = np.searchsorted(users, np.arange(n_users))
    ends = np.searchsorted(users, np.arange(n_users), side="right")
    for user in np.flatnonzero(ends > starts):
        recent = items[starts[user] : ends[user]][::-1][:HISTORY_LENGTH]
        histories[user, : len(recent)] = recent
    return histories


def write_feature_table(catalogue: Catalogue, path: Path) -> Path:
    """Everything the route looks up per item and per user, in one .npz."""
    world = catalogue.world
    items = np.arange(catalogue.n_items)
    users = np.arange(len(world.user_region))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        item_genre=world.item_genre.astype(np.int64),
        item_available=catalogue.available,
        item_dense=world.item_dense(items).astype(np.float32),
        item_age_years=world.item_age.astype(np.float32),
        popularity_order=np.argsort(-world.item_popularity, kind="stable").astype(np.int64),
        user_dense=world.user_dense(users).astype(np.float32),
    )
    return path
