"""Spec of the DCN-v2 ranker: its features, tensors, tolerances and budgets.

The feature schema lives here (not in the trainer) because the client, the synthetic
data generator, the exporter and the served config all have to agree on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from marquee.specs.base import (
    DataType,
    DynamicBatching,
    LatencyBudget,
    ModelSpec,
    Precision,
    TensorSpec,
    Tolerance,
)


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    cardinality: int


# Column order of the `categorical` input. Ids outside [0, cardinality) are valid on the
# wire and map to a learned out-of-vocabulary row: new users and items appear every day.
CATEGORICAL_FEATURES: tuple[CategoricalFeature, ...] = (
    CategoricalFeature("user_id", 10_000),
    CategoricalFeature("user_region", 8),
    CategoricalFeature("item_id", 5_000),
    CategoricalFeature("item_genre", 16),
    CategoricalFeature("context_device", 4),
    CategoricalFeature("context_hour", 24),
)

# Column order of the `dense` input; each is standardised to roughly zero mean, unit scale.
DENSE_FEATURES: tuple[str, ...] = (
    "user_log_activity",
    "user_tenure_years",
    "item_log_popularity",
    "item_age_years",
    "item_duration_hours",
    "context_session_depth",
)

RANKER_MAX_BATCH = 1024
FAMILY = "ranker"


# A page's candidates in one request. GPU hosts: p99 in microseconds. CPU hosts: against the
# same ONNX file run in-process on one thread (served p99 / in-process median batch time;
# served rows/s / in-process rows/s). The INT8 ranker measured 3.0 and 0.54 on a 2-core AMD
# EPYC (2026-11-22), and 7.4-9.3 and 0.29-0.33 on a 2-core Intel Xeon (2026-12-03, CPU steal
# under 16%; the same code as the AMD figures gave 3.7 and 7.7 there): the served path's
# fixed costs (three processes on two cores) weigh more against a faster reference. The
# bounds hold on both with room for a stall; a ranker 30 ms slower measures above 25.
# Smaller regressions are caught against each CPU model's own baseline (perf/baselines).
RANKER_BUDGET = LatencyBudget(
    perf_latency_p99_us=5_000,
    batch_size=256,
    concurrency=1,
    cpu_p99_ratio_max=12.0,
    cpu_throughput_ratio_min=0.2,
    gated=True,
)


def _ranker_spec(precision: Precision, tolerance: Tolerance) -> ModelSpec:
    return ModelSpec(
        name=f"ranker_{precision.value}",
        family=FAMILY,
        precision=precision,
        description=f"DCN-v2 click-probability ranker ({precision.value.upper()} ONNX)",
        inputs=(
            TensorSpec(
                "categorical",
                DataType.INT64,
                (len(CATEGORICAL_FEATURES),),
                description="user, item and context ids",
                fields=tuple(f.name for f in CATEGORICAL_FEATURES),
            ),
            TensorSpec(
                "dense",
                DataType.FP32,
                (len(DENSE_FEATURES),),
                description="standardised numeric features",
                fields=DENSE_FEATURES,
            ),
        ),
        outputs=(
            TensorSpec(
                "probability",
                DataType.FP32,
                (1,),
                description="predicted click probability",
                value_range=(0.0, 1.0),
            ),
        ),
        max_batch_size=RANKER_MAX_BATCH,
        # A ranking request already carries hundreds of candidates, so a short queue
        # delay is enough to merge concurrent pages into one ONNX Runtime call.
        dynamic_batching=DynamicBatching(max_queue_delay_us=200),
        # Instances and ONNX Runtime threads come from the deployment target (marquee/targets.py).
        tolerance=tolerance,
        budget=RANKER_BUDGET,
        warmup_batch_sizes=(1, 256),
    )


RANKER_FP32 = _ranker_spec(Precision.FP32, Tolerance(atol=1e-4))
# Static INT8 quantisation moves probabilities by ~3e-3 on average (measured). Ranking
# quality is what matters, so the gate bounds the AUC drop, the mean and the 99.9th
# percentile of the absolute difference, and holds single rows only to a loose cap: across
# five checkpoints (4k-100k training rows, five seeds; 2026-12-03) the worst of 20k holdout
# rows ranged 0.023-0.065, the 99.9th percentile 0.014-0.030 (the TensorRT QDQ twin the
# highest), the mean <= 0.0053 and the AUC drop <= 3e-4: one row must not reject a good export.
RANKER_INT8 = dataclasses.replace(
    _ranker_spec(Precision.INT8, Tolerance(atol=0.10, mean_atol=0.008, p999_atol=0.04, max_auc_drop=0.01)),
    # GPU targets load a QDQ twin with TensorRT INT8 (export/quantize.py says why two files).
    gpu_artifact="model.qdq.onnx",
)

RANKER_BY_PRECISION: dict[Precision, ModelSpec] = {Precision.FP32: RANKER_FP32, Precision.INT8: RANKER_INT8}
