"""A seeded synthetic catalogue and interaction log with planted preferences.

No public interaction log can be downloaded here, so the ranker trains on a world whose
click probabilities we know. The planted structure is what a real streaming log shows:
- each user loves two or three genres (a sparse Dirichlet preference);
- regions favour some genres;
- the hour of day shifts genres (kids' titles in the morning, thrillers at night);
- mobile viewers avoid long titles;
- popular, fresh and good titles get more clicks (quality is latent, learned via item_id).
Because the true probability of every row is known, the best achievable ("oracle") AUC
is reported next to the model's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from marquee.routes.recommend.agreement import average_ranks
from marquee.specs.ranker import CATEGORICAL_FEATURES, DENSE_FEATURES

CARDINALITY = {f.name: f.cardinality for f in CATEGORICAL_FEATURES}
N_GENRES = CARDINALITY["item_genre"]
KIDS_GENRES = (0, 1)
NIGHT_GENRES = (2, 3)
MOBILE_DEVICE = 0


@dataclass(frozen=True)
class Interactions:
    categorical: np.ndarray  # int64 [n, 6], columns as CATEGORICAL_FEATURES
    dense: np.ndarray  # float32 [n, 6], columns as DENSE_FEATURES
    clicked: np.ndarray  # float32 [n]
    true_probability: np.ndarray  # float32 [n]

    def __len__(self) -> int:
        return len(self.clicked)


def _draw_items(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "genre": rng.integers(0, N_GENRES, n),
        "popularity": rng.zipf(1.6, n).clip(max=10_000).astype(float),
        "age": rng.exponential(2.0, n),
        "duration": rng.choice([0.4, 0.8, 1.5, 2.5], n, p=[0.35, 0.3, 0.25, 0.1]),
        "quality": rng.normal(0.0, 0.5, n),
    }


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


class SyntheticWorld:
    """Users, items and the planted rules that turn an impression into a click."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        n_users, n_items = CARDINALITY["user_id"], CARDINALITY["item_id"]
        n_regions, n_hours = CARDINALITY["user_region"], CARDINALITY["context_hour"]

        self.user_region = rng.integers(0, n_regions, n_users)
        self.user_activity = rng.lognormal(1.0, 0.8, n_users)
        self.user_tenure = rng.gamma(2.0, 1.5, n_users)
        self.genre_preference = rng.dirichlet(np.full(N_GENRES, 0.25), n_users)

        self._set_items(_draw_items(rng, n_items))

        self.region_genre = rng.normal(0.0, 0.4, (n_regions, N_GENRES))
        hours = np.arange(n_hours)
        self.hour_genre = np.zeros((n_hours, N_GENRES))
        self.hour_genre[:, KIDS_GENRES] = 0.9 * np.exp(-((hours - 8) ** 2) / 8.0)[:, None]
        self.hour_genre[:, NIGHT_GENRES] = 0.9 * np.exp(-(((hours - 23) % 24) ** 2) / 8.0)[:, None]

        self._dense_user = np.stack([_standardise(np.log1p(self.user_activity)), _standardise(self.user_tenure)], 1)
        raw = self._raw_item_features()
        # Standardisation statistics of the training catalogue, reused for new titles.
        self._item_mean, self._item_scale = raw.mean(0), raw.std(0) + 1e-9
        self._dense_item = (raw - self._item_mean) / self._item_scale

    def _set_items(self, items: dict[str, np.ndarray]) -> None:
        self.item_genre = items["genre"]
        self.item_popularity = items["popularity"]
        self.item_age = items["age"]
        self.item_duration = items["duration"]
        self.item_quality = items["quality"]

    def _raw_item_features(self) -> np.ndarray:
        return np.stack([np.log1p(self.item_popularity), self.item_age, self.item_duration], 1)

    @property
    def n_items(self) -> int:
        return len(self.item_genre)

    def user_dense(self, users: np.ndarray) -> np.ndarray:
        return self._dense_user[users]

    def item_dense(self, items: np.ndarray) -> np.ndarray:
        return self._dense_item[items]

    def with_new_titles(self, n_items: int, seed: int) -> SyntheticWorld:
        """The same users and rules, with the catalogue grown to `n_items`.

        The first titles are the ones the ranker trained on; the rest are new (their
        ids are out of the ranker's vocabulary) and are drawn from the same
        distributions, standardised with the training catalogue's statistics.
        """
        if n_items < self.n_items:
            raise ValueError(f"n_items={n_items}; must be >= the training catalogue's {self.n_items}")
        grown = copy.copy(self)
        extra = _draw_items(np.random.default_rng([seed, n_items]), n_items - self.n_items)
        base = {
            "genre": self.item_genre,
            "popularity": self.item_popularity,
            "age": self.item_age,
            "duration": self.item_duration,
            "quality": self.item_quality,
        }
        grown._set_items({k: np.concatenate([base[k], extra[k]]) for k in base})
        grown._dense_item = (grown._raw_item_features() - self._item_mean) / self._item_scale
        return grown

    def click_probability(
        self, users: np.ndarray, items: np.ndarray, device: np.ndarray, hour: np.ndarray, session_depth: np.ndarray
    ) -> np.ndarray:
        """The true probability that each impression is clicked (the planted rules)."""
        genre = self.item_genre[items]
        region = self.user_region[users]
        logit = (
            -2.3
            + 5.0 * self.genre_preference[users, genre]
            + self.region_genre[region, genre]
            + self.hour_genre[hour, genre]
            + self.item_quality[items]
            + 0.3 * self._dense_item[items, 0]
            - 0.3 * self._dense_item[items, 1]
            - 0.8 * (device == MOBILE_DEVICE) * self._dense_item[items, 2]
            + 0.2 * self._dense_user[users, 0]
            - 0.1 * session_depth
        )
        return 1.0 / (1.0 + np.exp(-logit))

    def sample(self, n: int, seed: int) -> Interactions:
        """Sample `n` impressions: who saw what, where and when, and whether they clicked."""
        rng = np.random.default_rng(seed)
        users = rng.choice(len(self.user_region), n, p=self.user_activity / self.user_activity.sum())
        exposure = np.sqrt(self.item_popularity)
        items = rng.choice(len(self.item_genre), n, p=exposure / exposure.sum())
        device = rng.choice(CARDINALITY["context_device"], n, p=[0.45, 0.3, 0.15, 0.1])
        hour = rng.integers(0, CARDINALITY["context_hour"], n)
        session_depth = rng.poisson(2.0, n).astype(float)

        genre = self.item_genre[items]
        region = self.user_region[users]
        probability = self.click_probability(users, items, device, hour, session_depth)
        categorical = np.stack([users, region, items, genre, device, hour], 1).astype(np.int64)
        dense = np.concatenate(
            [self._dense_user[users], self._dense_item[items], ((session_depth - 2.0) / 1.4)[:, None]], 1
        ).astype(np.float32)
        assert dense.shape[1] == len(DENSE_FEATURES)
        return Interactions(
            categorical=categorical,
            dense=dense,
            clicked=(rng.random(n) < probability).astype(np.float32),
            true_probability=probability.astype(np.float32),
        )


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic, ties averaged."""
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes; got {n_pos} positives and {n_neg} negatives")
    ranks = average_ranks(scores)  # ties count one half
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
