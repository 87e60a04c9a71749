"""Specs of the layered recommendation route: retrieval, filtering, ranking, business rules.

recommend (Python BLS: control flow, budgets, fallback)
  ├─ retrieve (ensemble: data flows straight through)
  │    ├─ user_tower  (ONNX)  user, region, history -> embedding
  │    └─ candidates  (ONNX)  embedding -> top-K item ids by inner product
  ├─ filter          (in recommend: region availability, history, blocklist)
  ├─ ranker_fp32     (ONNX, dynamically batched across concurrent pages)
  └─ rules           (in recommend: genre cap, freshness boost, tie-breaks)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from marquee.specs.base import (
    DataType,
    DynamicBatching,
    EnsembleStep,
    InstanceGroup,
    LatencyBudget,
    ModelSpec,
    Precision,
    TensorSpec,
    Tolerance,
)
from marquee.specs.ranker import CATEGORICAL_FEATURES, RANKER_INT8

FAMILY = "recommend"
N_REGIONS = next(f.cardinality for f in CATEGORICAL_FEATURES if f.name == "user_region")
N_DEVICES = next(f.cardinality for f in CATEGORICAL_FEATURES if f.name == "context_device")


@dataclass(frozen=True)
class RouteSettings:
    n_items: int = 100_000
    top_k: int = 500
    rank_candidates: int = 256  # best survivors (by retrieval score) that the ranker scores
    tower_history: int = 20  # most recent items the user tower sees
    max_history: int = 500  # longest history a request may carry (all of it is filtered out)
    embedding_dim: int = 32
    max_n: int = 100
    max_per_genre: int = 3
    freshness_boost: float = 0.3  # score *= 1 + boost * exp(-age_years / freshness_years)
    freshness_years: float = 0.25


@dataclass(frozen=True)
class StageBudgets:
    """The page's deadlines in milliseconds, all enforced by the route:
    - `retrieve` and `rank` bound their BLS calls (a late call is abandoned and the page
      falls back to a cheaper order);
    - `rules` is kept in reserve: ranking is cut short so that the rules still have this
      long before `total`; with less than that left, the page skips the ranker;
    - `total` is the page's budget; its p99 target on GPU hosts.
    Filtering has no deadline of its own: it is bounded numpy work over at most `top_k`
    candidates and `max_history` ids, measured in `stage_ms`.
    """

    retrieve: float = 8.0
    rank: float = 10.0
    rules: float = 2.0
    total: float = 25.0


SETTINGS = RouteSettings()
BUDGETS = StageBudgets()
STAGES = ("retrieve", "filter", "rank", "rules", "total")  # the `stage_ms` output's fields
# What a client sees on top of the page budget on a CPU host: gRPC, Python stubs, network.
CLIENT_ALLOWANCE_MS = 5.0

_TOWER_INPUTS = (
    TensorSpec("user_id", DataType.INT64, (1,), description="user id; unknown ids use the cold-start row"),
    TensorSpec("region", DataType.INT64, (1,), value_range=(0, N_REGIONS - 1)),
    TensorSpec("history", DataType.INT64, (SETTINGS.tower_history,), description="recent item ids, -1 padded"),
)
_NO_TOLERANCE = Tolerance(atol=1e-4)

USER_TOWER = ModelSpec(
    name="user_tower",
    family=FAMILY,
    precision=Precision.FP32,
    description="two-tower retrieval: user embedding",
    inputs=_TOWER_INPUTS,
    outputs=(TensorSpec("user_embedding", DataType.FP32, (SETTINGS.embedding_dim,)),),
    max_batch_size=16,
    dynamic_batching=DynamicBatching(max_queue_delay_us=100),
    warmup_batch_sizes=(1,),
    tolerance=_NO_TOLERANCE,
    budget=LatencyBudget(perf_latency_p99_us=3_000),
)

CANDIDATES = ModelSpec(
    name="candidates",
    family=FAMILY,
    precision=Precision.FP32,
    description="exact maximum inner product search: MatMul over all item embeddings + TopK",
    inputs=(TensorSpec("user_embedding", DataType.FP32, (SETTINGS.embedding_dim,)),),
    outputs=(
        TensorSpec("candidate_ids", DataType.INT64, (SETTINGS.top_k,)),
        TensorSpec("candidate_scores", DataType.FP32, (SETTINGS.top_k,)),
    ),
    max_batch_size=16,
    dynamic_batching=DynamicBatching(max_queue_delay_us=100),
    warmup_batch_sizes=(1,),
    tolerance=_NO_TOLERANCE,
    budget=LatencyBudget(perf_latency_p99_us=6_000),
)

CANDIDATES_IVF = dataclasses.replace(
    CANDIDATES,
    name="candidates_ivf",
    description="approximate maximum inner product search: FAISS IVF index (CPU)",
    backend="python",
    artifact="model.py",
    parameters={"threads": "1"},  # nprobe is tuned at export (ivf.json); set "nprobe" to override
    warmup_batch_sizes=(),
    tolerance=Tolerance(atol=1e-3, min_recall=0.99),
)


def _retrieve_ensemble(name: str, candidates: ModelSpec) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=FAMILY,
        precision=Precision.FP32,
        description=f"user tower -> {candidates.name}, chained by Triton with no Python in between",
        backend="ensemble",
        inputs=_TOWER_INPUTS,
        outputs=CANDIDATES.outputs,
        max_batch_size=16,
        dynamic_batching=None,
        instance_groups=(),
        ensemble_steps=(
            EnsembleStep(
                "user_tower",
                {t.name: t.name for t in _TOWER_INPUTS},
                {"user_embedding": "user_embedding"},
            ),
            EnsembleStep(
                candidates.name,
                {"user_embedding": "user_embedding"},
                {t.name: t.name for t in CANDIDATES.outputs},
            ),
        ),
        tolerance=_NO_TOLERANCE,
        budget=LatencyBudget(perf_latency_p99_us=int(BUDGETS.retrieve * 1000)),
    )


# Exact search: one ONNX artifact for CPU and GPU (TensorRT / CUDA EP).
RETRIEVE = _retrieve_ensemble("retrieve", CANDIDATES)
# Approximate search: ~10x less CPU per page at recall@500 >= 0.99; the CPU default.
RETRIEVE_IVF = _retrieve_ensemble("retrieve_ivf", CANDIDATES_IVF)

RECOMMEND = ModelSpec(
    name="recommend",
    family=FAMILY,
    precision=Precision.FP32,
    description="home-page route: retrieve, filter, rank, business rules; degrades instead of failing",
    backend="python",
    artifact="model.py",
    inputs=(
        TensorSpec("user_id", DataType.INT64, (1,)),
        TensorSpec("region", DataType.INT64, (1,), value_range=(0, N_REGIONS - 1)),
        TensorSpec("history", DataType.INT64, ("history_length",), description="recently watched item ids"),
        TensorSpec("context", DataType.INT64, (2,), fields=("device", "hour")),
        TensorSpec("n", DataType.INT32, (1,), value_range=(1, SETTINGS.max_n)),
    ),
    outputs=(
        TensorSpec("item_ids", DataType.INT64, ("n",)),
        TensorSpec("scores", DataType.FP32, ("n",)),
        TensorSpec("genres", DataType.INT64, ("n",)),
        TensorSpec("degraded", DataType.BOOL, (1,)),
        TensorSpec(
            "degraded_reason",
            DataType.BYTES,
            (1,),
            description="why a cheaper order was used ('' when not degraded): a late or failed stage, a missing model",
        ),
        TensorSpec("stage_ms", DataType.FP32, (len(STAGES),), fields=STAGES),
        TensorSpec(
            "cohort",
            DataType.BYTES,
            (1,),
            description="the user's experiment cohort: control, treatment, or none (no experiment running)",
        ),
    ),
    # The route is control flow around batched models; it batches nothing itself.
    max_batch_size=0,
    dynamic_batching=None,
    # Several instances so that one page waiting on the ranker does not block the next.
    instance_groups=(InstanceGroup(count=4),),
    parameters={
        "retrieve_model": RETRIEVE_IVF.name,
        # INT8: same AUC within 1e-4 on the holdout, and the cheaper page under load.
        "ranker_model": RANKER_INT8.name,
        "max_per_genre": str(SETTINGS.max_per_genre),
        "freshness_boost": str(SETTINGS.freshness_boost),
        "freshness_years": str(SETTINGS.freshness_years),
        "blocklist": "blocklist.txt",
        "surfaces": "surfaces.yaml",  # policies/surfaces.yaml, copied at export
        # policies/experiments.yaml, copied at export when absent (then `marquee rollout` owns it)
        "experiments": "experiments.yaml",
        "shadow_deadline_ms": "250",  # a shadow call's own deadline; it never delays the page
        "shadow_log": "shadow_samples.jsonl",  # sampled serving/shadow rankings, one JSON per line
        "max_n": str(SETTINGS.max_n),
        "max_history": str(SETTINGS.max_history),
        "tower_history": str(SETTINGS.tower_history),
        "top_k": str(SETTINGS.top_k),
        "rank_candidates": str(SETTINGS.rank_candidates),
    },
    stage_budgets_ms=dataclasses.asdict(BUDGETS),
    composes=("retrieve_model", "ranker_model"),
    tolerance=_NO_TOLERANCE,
    # Four home pages in flight: the load the stage budgets were set for.
    budget=LatencyBudget(
        perf_latency_p99_us=int(BUDGETS.total * 1000),
        batch_size=1,
        concurrency=4,
        cpu_p99_us=int((BUDGETS.total + CLIENT_ALLOWANCE_MS) * 1000),
        gated=True,
        serve_with=(RANKER_INT8.name, USER_TOWER.name, CANDIDATES_IVF.name, RETRIEVE_IVF.name),
    ),
)

RECOMMEND_MODELS = (USER_TOWER, CANDIDATES, CANDIDATES_IVF, RETRIEVE, RETRIEVE_IVF, RECOMMEND)
