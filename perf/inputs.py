"""Request data for perf_analyzer, where random tensors would not be valid traffic.

Most models take whatever perf_analyzer generates (the ranker maps unknown ids to its
out-of-vocabulary row). The `recommend` route rejects unknown regions and hours, so it is
driven with real users, their regions and their recent histories. `moderate_text` gets
held-out comments from the labelled set, 16 a request, clean and harmful mixed (random
bytes would be invalid UTF-8, which the route answers with per-item errors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SAMPLES = 400


def recommend_samples(n_items: int, count: int = SAMPLES, seed: int = 5) -> list[dict]:
    """Realistic pages: real users, their regions and recent histories, evening on a TV."""
    from export.recommend.catalogue import build_catalogue, user_histories

    catalogue = build_catalogue(n_items)
    histories = user_histories(catalogue)
    rng = np.random.default_rng(seed)
    samples = []
    for user in rng.integers(0, len(histories), count):
        history = [int(i) for i in histories[user] if i >= 0][:10] or [int(rng.integers(0, n_items))]
        samples.append(
            {
                "user_id": int(user),
                "region": int(catalogue.world.user_region[user]),
                "history": history,
                "context": [1, 20],
                "n": 20,
            }
        )
    return samples


def write_recommend_input(samples: list[dict], path: Path) -> Path:
    """perf_analyzer's --input-data JSON for the route (variable-length history)."""
    data = [
        {
            "user_id": [s["user_id"]],
            "region": [s["region"]],
            "history": {"content": s["history"], "shape": [len(s["history"])]},
            "context": s["context"],
            "n": [s["n"]],
        }
        for s in samples
    ]
    path.write_text(json.dumps({"data": data}))
    return path


MODERATION_TEXTS_PER_REQUEST = 16


def write_moderation_input(path: Path, requests: int = 50, per_request: int = MODERATION_TEXTS_PER_REQUEST) -> Path:
    from export.moderation.text_dataset import build_dataset

    texts = [example.text for example in build_dataset().test]
    data = []
    for index in range(requests):
        start = (index * per_request) % (len(texts) - per_request)
        batch = texts[start : start + per_request]
        data.append({"text": {"content": batch, "shape": [len(batch)]}})
    path.write_text(json.dumps({"data": data}))
    return path


def input_args(model: str, repository: Path, workdir: Path) -> list[str]:
    """Extra perf_analyzer arguments a model needs for valid requests ([] for most)."""
    if model.startswith("moderate_text"):
        return ["--input-data", str(write_moderation_input(workdir / f"{model}-input.json"))]
    if not model.startswith("recommend"):
        return []
    stamp = json.loads((repository / model / "1" / "marquee-export.json").read_text())
    path = write_recommend_input(recommend_samples(int(stamp["n_items"])), workdir / f"{model}-input.json")
    return ["--input-data", str(path)]
