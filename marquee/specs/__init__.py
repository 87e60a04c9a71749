"""Model specs and the catalogue of every model Marquee serves."""

from marquee.specs.base import (
    DataType,
    DynamicBatching,
    InstanceGroup,
    LatencyBudget,
    ModelSpec,
    Precision,
    QueuePolicy,
    RateLimiter,
    TensorSpec,
    Tolerance,
)
from marquee.specs.catalogue import CATALOGUE, get_spec, specs_for_family

__all__ = [
    "CATALOGUE",
    "DataType",
    "DynamicBatching",
    "InstanceGroup",
    "LatencyBudget",
    "ModelSpec",
    "Precision",
    "QueuePolicy",
    "RateLimiter",
    "TensorSpec",
    "Tolerance",
    "get_spec",
    "specs_for_family",
]
