"""The recommend route's steps in plain numpy: filtering, ranker features, business rules.

Kept free of Triton imports so that unit tests exercise exactly the code that serves.
`model.py` (next to this file in the model repository) wires these steps to BLS calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:  # installed next to route_runtime.py in the route's version folder
    from route_runtime import ReloadingFile
except ImportError:  # imported from the marquee package
    from marquee.routes.route_runtime import ReloadingFile

# Copied from the specs because this file runs inside Triton, where the marquee package
# may not be installed (NGC container); a unit test keeps them equal.
N_REGIONS = 8
N_DEVICES = 4
N_HOURS = 24


class RouteInputError(ValueError):
    """The request is malformed; it gets an error response naming the field."""


@dataclass(frozen=True)
class RouteRequest:
    user_id: int
    region: int
    history: np.ndarray  # int64 [h]
    device: int
    hour: int
    n: int


def parse_request(
    user_id: np.ndarray,
    region: np.ndarray,
    history: np.ndarray,
    context: np.ndarray,
    n: np.ndarray,
    max_n: int,
    max_history: int,
) -> RouteRequest:
    region_value, n_value = int(region.ravel()[0]), int(n.ravel()[0])
    device, hour = (int(v) for v in context.ravel()[:2])
    if not 0 <= region_value < N_REGIONS:
        raise RouteInputError(f"region={region_value} is not a known region; allowed: 0 to {N_REGIONS - 1}")
    if not 0 <= device < N_DEVICES:
        raise RouteInputError(f"context[0] (device)={device}; allowed: 0 to {N_DEVICES - 1}")
    if not 0 <= hour < N_HOURS:
        raise RouteInputError(f"context[1] (hour)={hour}; allowed: 0 to {N_HOURS - 1}")
    if not 1 <= n_value <= max_n:
        raise RouteInputError(f"n={n_value}; allowed: 1 to {max_n}")
    if history.size > max_history:
        raise RouteInputError(f"history has {history.size} items; allowed: at most {max_history} (most recent first)")
    return RouteRequest(int(user_id.ravel()[0]), region_value, history.ravel().astype(np.int64), device, hour, n_value)


@dataclass
class FeatureTables:
    item_genre: np.ndarray
    item_available: np.ndarray
    item_dense: np.ndarray
    item_age_years: np.ndarray
    popularity_order: np.ndarray
    user_dense: np.ndarray

    @classmethod
    def load(cls, path: str) -> FeatureTables:
        with np.load(path, allow_pickle=False) as data:  # a feature table is arrays, never objects
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    @property
    def n_items(self) -> int:
        return len(self.item_genre)


def parse_blocklist(raw_bytes: bytes, path: str) -> np.ndarray:
    """One id per line; blank lines and `#` comments are ignored."""
    lines = [line.split("#", 1)[0].strip() for line in raw_bytes.decode().splitlines()]
    return np.unique(np.array([int(line) for line in lines if line], dtype=np.int64))


class Blocklist(ReloadingFile):
    """Item ids blocked by moderation, re-read whenever the file changes (no restart).

    Checked on every page (a blocked title must go at once). A file that fails to parse
    keeps the previous list in force and the error is reported through `last_error`; no
    file blocks nothing.
    """

    def __init__(self, path: str):
        super().__init__(path, parse_blocklist, "blocklist", recheck_s=0.0)

    def ids(self) -> np.ndarray:
        current = self.current()
        return current if current is not None else np.empty(0, np.int64)


def filter_candidates(
    ids: np.ndarray, scores: np.ndarray, tables: FeatureTables, region: int, history: np.ndarray, blocked: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ids, scores, _ = filter_steps(ids, scores, tables, region, history, blocked)
    return ids, scores


def filter_steps(
    ids: np.ndarray, scores: np.ndarray, tables: FeatureTables, region: int, history: np.ndarray, blocked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The candidates licensed in the region, not watched and not blocked, plus how many
    were left after each step (for the route's metrics)."""
    survivors = {"retrieved": len(ids)}
    in_catalogue = (ids >= 0) & (ids < tables.n_items)
    ids, scores = ids[in_catalogue], scores[in_catalogue]
    keep = ((tables.item_available[ids] >> np.uint8(region)) & 1).astype(bool)
    survivors["licensed"] = int(keep.sum())
    if history.size:
        keep &= ~np.isin(ids, history)
    survivors["unwatched"] = int(keep.sum())
    if blocked.size:
        keep &= ~np.isin(ids, blocked)
    survivors["unblocked"] = int(keep.sum())
    return ids[keep], scores[keep], survivors


def ranker_inputs(request: RouteRequest, items: np.ndarray, tables: FeatureTables) -> tuple[np.ndarray, np.ndarray]:
    """The ranker's `categorical` and `dense` rows for each candidate (columns as its spec)."""
    count = len(items)
    categorical = np.empty((count, 6), np.int64)
    categorical[:, 0] = request.user_id
    categorical[:, 1] = request.region
    categorical[:, 2] = items
    categorical[:, 3] = tables.item_genre[items]
    categorical[:, 4] = request.device
    categorical[:, 5] = request.hour
    known_user = 0 <= request.user_id < len(tables.user_dense)
    user = tables.user_dense[request.user_id] if known_user else np.zeros(2, np.float32)
    dense = np.empty((count, 6), np.float32)
    dense[:, 0:2] = user
    dense[:, 2:5] = tables.item_dense[items]
    dense[:, 5] = 0.0  # session depth is not known to the home page: its standardised mean
    return categorical, dense


def retrieval_as_scores(retrieval_scores: np.ndarray) -> np.ndarray:
    """Retrieval logits mapped to (0, 1] so the business rules treat them like probabilities."""
    if retrieval_scores.size == 0:
        return retrieval_scores.astype(np.float32)
    return np.exp(retrieval_scores - retrieval_scores.max()).astype(np.float32)


def apply_rules(
    ids: np.ndarray,
    scores: np.ndarray,
    tables: FeatureTables,
    n: int,
    max_per_genre: int,
    freshness_boost: float,
    freshness_years: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Freshness boost, then the best `n` with at most `max_per_genre` per genre.

    Ties break on the smaller item id, so equal inputs always give the same page.
    """
    boosted = scores * (1.0 + freshness_boost * np.exp(-tables.item_age_years[ids] / freshness_years))
    order = np.lexsort((ids, -boosted))
    genres = tables.item_genre[ids]
    taken = np.zeros(int(genres.max(initial=0)) + 1, np.int64)
    chosen = []
    for index in order:
        genre = genres[index]
        if taken[genre] < max_per_genre:
            taken[genre] += 1
            chosen.append(index)
            if len(chosen) == n:
                break
    chosen_index = np.array(chosen, np.int64)
    return ids[chosen_index], boosted[chosen_index].astype(np.float32), genres[chosen_index]
