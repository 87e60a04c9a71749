"""How far two rankers agree on one page's candidates: top-k overlap and rank correlation.

Pure numpy, installed with the `recommend` route (shadow scoring) and used offline.
"""

from __future__ import annotations

import numpy as np


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The `k` best ids by score, ties broken on the smaller id (as the route's rules do)."""
    order = np.lexsort((ids, -np.asarray(scores, dtype=np.float64)))
    return ids[order[:k]]


def top_k_overlap(ids: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, k: int) -> float:
    """|top-k(a) ∩ top-k(b)| / k' with k' = min(k, candidates); 1.0 for no candidates."""
    k = min(k, len(ids))
    if k == 0:
        return 1.0
    shared = np.intersect1d(top_k(ids, scores_a, k), top_k(ids, scores_b, k))
    return len(shared) / k


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    boundaries = np.flatnonzero(np.diff(ordered)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson on average ranks); 1.0 when either side is
    constant or there are fewer than two candidates (no order to disagree on)."""
    if len(scores_a) != len(scores_b):
        raise ValueError(f"spearman: {len(scores_a)} scores against {len(scores_b)}; must be equal")
    if len(scores_a) < 2:
        return 1.0
    a, b = average_ranks(scores_a), average_ranks(scores_b)
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denominator == 0.0:
        return 1.0
    return float((a * b).sum() / denominator)
