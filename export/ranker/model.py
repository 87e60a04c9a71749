"""DCN-v2 ranker: a cross network and a deep MLP, in parallel, over embeddings + dense features.

Wang et al., "DCN V2" (2021): cross layer x_{l+1} = x_0 * (W x_l + b) + x_l.
All categorical features share one embedding table (with per-feature offsets), so the
exported graph does one Gather per batch instead of one per feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from marquee.specs.ranker import CATEGORICAL_FEATURES, DENSE_FEATURES


@dataclass(frozen=True)
class RankerArchitecture:
    embedding_dim: int = 16
    cross_layers: int = 3
    deep_layers: tuple[int, ...] = (512, 256, 128)

    @classmethod
    def from_dict(cls, d: dict) -> RankerArchitecture:
        return cls(**{**d, "deep_layers": tuple(d["deep_layers"])})

    def to_dict(self) -> dict:
        return asdict(self)


class DCNRanker(nn.Module):
    def __init__(self, arch: RankerArchitecture):
        super().__init__()
        self.arch = arch
        cardinalities = torch.tensor([f.cardinality for f in CATEGORICAL_FEATURES])
        # Each feature gets cardinality + 1 rows; the last one is its out-of-vocabulary row.
        sizes = cardinalities + 1
        self.register_buffer("cardinalities", cardinalities, persistent=False)
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.embedding = nn.Embedding(int(sizes.sum()), arch.embedding_dim)
        width = len(CATEGORICAL_FEATURES) * arch.embedding_dim + len(DENSE_FEATURES)
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(arch.cross_layers))
        deep: list[nn.Module] = []
        previous = width
        for size in arch.deep_layers:
            deep += [nn.Linear(previous, size), nn.ReLU()]
            previous = size
        self.deep = nn.Sequential(*deep)
        self.head = nn.Linear(width + previous, 1)

    def logits(self, categorical: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        in_vocab = (categorical >= 0) & (categorical < self.cardinalities)
        ids = torch.where(in_vocab, categorical, self.cardinalities) + self.offsets
        x0 = torch.cat([self.embedding(ids).flatten(1), dense], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.head(torch.cat([x, self.deep(x0)], dim=1))

    def forward(self, categorical: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(categorical, dense))
