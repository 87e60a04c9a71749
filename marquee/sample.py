"""A sample ranking request: one page of candidates scored by the served ranker."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from marquee.specs.ranker import CATEGORICAL_FEATURES

CANDIDATES = 8


def sample_page(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Candidate rows for one user, drawn from the synthetic world the ranker learned."""
    from export.ranker.data import SyntheticWorld

    rows = SyntheticWorld(0).sample(CANDIDATES, seed=seed)
    categorical = rows.categorical.copy()
    categorical[:, :2] = categorical[0, :2]  # same user and region for the whole page
    categorical[:, 4:] = categorical[0, 4:]  # same device and hour
    return categorical, rows.dense


def ranked_table(model: str, categorical: np.ndarray, probability: np.ndarray) -> Table:
    names = [f.name for f in CATEGORICAL_FEATURES]
    item, genre = names.index("item_id"), names.index("item_genre")
    table = Table(title=f"{model}: user {categorical[0, 0]}, region {categorical[0, 1]}")
    for column in ("rank", "item_id", "genre", "p(click)"):
        table.add_column(column, justify="right")
    for rank, row in enumerate(np.argsort(-probability), start=1):
        table.add_row(str(rank), str(categorical[row, item]), str(categorical[row, genre]), f"{probability[row]:.4f}")
    return table


def recommendation_table(user: int, region: int, page) -> Table:
    state = f"[yellow]degraded: {page.degraded_reason}[/]" if page.degraded else "[green]ranked[/]"
    stages = ", ".join(f"{name} {ms:.1f}" for name, ms in page.stage_ms.items())
    table = Table(title=f"recommend: user {user}, region {region} ({state})", caption=f"server ms: {stages}")
    for column in ("rank", "item_id", "genre", "score"):
        table.add_column(column, justify="right")
    for rank, item in enumerate(page.items, start=1):
        table.add_row(str(rank), str(item.item_id), str(item.genre), f"{item.score:.4f}")
    return table
