"""Typed model specs: the single source of truth for every served model.

Everything else is derived from a `ModelSpec`: ONNX export axes, `config.pbtxt`,
client-side validation and perf_analyzer shapes. The module needs only numpy so that
clients can import it without torch or onnxruntime.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

BATCH_AXIS = "batch_size"


class DataType(enum.Enum):
    """Triton tensor dtypes we use, with their numpy and wire ("FP32") names."""

    FP32 = ("TYPE_FP32", np.float32)
    FP16 = ("TYPE_FP16", np.float16)
    INT32 = ("TYPE_INT32", np.int32)
    INT64 = ("TYPE_INT64", np.int64)
    UINT8 = ("TYPE_UINT8", np.uint8)
    BOOL = ("TYPE_BOOL", np.bool_)
    BYTES = ("TYPE_STRING", np.object_)

    @property
    def config_name(self) -> str:
        """Name used in `config.pbtxt` (`TYPE_FP32`)."""
        return self.value[0]

    @property
    def numpy(self) -> type:
        return self.value[1]

    @property
    def wire_name(self) -> str:
        """Name used by the inference protocol and tritonclient (`FP32`)."""
        return self.name


class Precision(enum.StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output, without the batch axis.

    `dims` holds ints for fixed sizes and strings for named dynamic axes; named axes
    become `-1` in Triton and dynamic axes in the ONNX export.
    `fields` optionally names the columns of the last axis (used in error messages).
    `value_range` is the inclusive range of valid values, checked by clients.
    """

    name: str
    dtype: DataType
    dims: tuple[int | str, ...]
    description: str = ""
    fields: tuple[str, ...] = ()
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.fields and self.dims and self.dims[-1] != len(self.fields):
            raise ValueError(
                f"TensorSpec `{self.name}`: last dim {self.dims[-1]} does not match {len(self.fields)} field names"
            )

    @property
    def triton_dims(self) -> list[int]:
        return [d if isinstance(d, int) else -1 for d in self.dims]

    def onnx_dynamic_axes(self, batched: bool) -> dict[int, str]:
        offset = 1 if batched else 0
        axes = {0: BATCH_AXIS} if batched else {}
        axes.update({i + offset: d for i, d in enumerate(self.dims) if isinstance(d, str)})
        return axes


@dataclass(frozen=True)
class QueuePolicy:
    """Triton's `ModelQueuePolicy`: how long a request may wait, and how many may wait."""

    default_timeout_us: int = 0  # 0: no timeout
    timeout_action: str = "REJECT"  # or "DELAY": run it anyway, after everything else
    allow_timeout_override: bool = False
    max_queue_size: int = 0  # 0: unbounded

    def __post_init__(self) -> None:
        if self.timeout_action not in ("REJECT", "DELAY"):
            raise ValueError(f"QueuePolicy.timeout_action={self.timeout_action!r}; allowed: REJECT, DELAY")


@dataclass(frozen=True)
class DynamicBatching:
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    # Priority levels: 1 is the most urgent. Requests without a priority get the default.
    priority_levels: int = 0
    default_priority_level: int = 0
    default_queue_policy: QueuePolicy | None = None

    def __post_init__(self) -> None:
        if self.priority_levels and not 1 <= self.default_priority_level <= self.priority_levels:
            raise ValueError(
                f"DynamicBatching.default_priority_level={self.default_priority_level}; "
                f"must be in [1, priority_levels={self.priority_levels}]"
            )


@dataclass(frozen=True)
class RateLimiter:
    """Resources an instance must hold to execute (Triton's rate limiter, enabled with
    `--rate-limit=execution_count`), and its share of scheduling chances: an instance
    with priority 2 gets half the chances of one with priority 1."""

    resources: tuple[tuple[str, int], ...] = ()
    priority: int = 1


@dataclass(frozen=True)
class InstanceGroup:
    count: int = 1
    kind: str = "KIND_CPU"
    rate_limiter: RateLimiter | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("KIND_CPU", "KIND_GPU", "KIND_AUTO", "KIND_MODEL"):
            raise ValueError(f"InstanceGroup.kind={self.kind!r}; allowed: KIND_CPU, KIND_GPU, KIND_AUTO, KIND_MODEL")
        if self.count < 1:
            raise ValueError(f"InstanceGroup.count={self.count}; must be >= 1")


@dataclass(frozen=True)
class ExecutionAccelerator:
    """One entry of Triton's `optimization.execution_accelerators`, e.g. ONNX Runtime's
    TensorRT execution provider with `precision_mode` FP16 (parameters as the backend names them)."""

    name: str
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Tolerance:
    """How close the exported model must stay to the framework reference."""

    atol: float  # on the largest absolute difference
    rtol: float = 0.0
    mean_atol: float | None = None  # on the mean absolute difference
    # On the 99.9th percentile of the absolute difference: a quantized model's tail, without
    # one row out of tens of thousands deciding (that row is held to `atol`).
    p999_atol: float | None = None
    max_auc_drop: float | None = None
    min_recall: float | None = None  # approximate search: recall@K against exact search


@dataclass(frozen=True)
class LatencyBudget:
    """A model's latency budget: the one place it is declared. `perf/budgets.yaml`, which
    `marquee perf gate` reads, is rendered from these (`marquee render`), and a route's
    stage deadlines come from `ModelSpec.stage_budgets_ms`.

    - `perf_latency_p99_us`: p99 on a GPU host at `batch_size` rows and `concurrency`
      requests in flight (perf_analyzer's metric, microseconds).
    - CPU hosts, models with an ONNX file: ratios against that file run in-process in the
      same run (`cpu_p99_ratio_max`, `cpu_throughput_ratio_min`), so host speed cancels out.
    - CPU hosts, routes: `cpu_p99_us`, the product SLO including client and network.
    - `gated`: `marquee perf gate` measures it; `serve_with`: models a route calls.
    """

    perf_latency_p99_us: int
    batch_size: int = 1
    concurrency: int = 1
    cpu_p99_ratio_max: float | None = None
    cpu_throughput_ratio_min: float | None = None
    cpu_p99_us: int | None = None
    gated: bool = False
    serve_with: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ratios = self.cpu_p99_ratio_max is not None or self.cpu_throughput_ratio_min is not None
        if self.gated and ratios == (self.cpu_p99_us is not None):
            raise ValueError("LatencyBudget: a gated budget needs CPU ratios or cpu_p99_us, not both")


@dataclass(frozen=True)
class EnsembleStep:
    """One step of a Triton ensemble: `input_map` / `output_map` go model tensor -> ensemble tensor."""

    model: str
    input_map: dict[str, str]
    output_map: dict[str, str]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    precision: Precision
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    tolerance: Tolerance
    budget: LatencyBudget
    backend: str = "onnxruntime"
    version: int = 1
    description: str = ""
    dynamic_batching: DynamicBatching | None = DynamicBatching()
    instance_groups: tuple[InstanceGroup, ...] = (InstanceGroup(),)
    # Backend parameters, named as the native backend names them (see render.py).
    parameters: dict[str, str] = field(default_factory=dict)
    artifact: str = "model.onnx"
    # Files the export keeps next to the artifact for offline tools (benchmarks,
    # retraining) that no server reads; `marquee deploy assemble` leaves them out.
    offline_files: tuple[str, ...] = ()
    # Batch sizes Triton runs (zero-filled) before marking the model ready, so the first
    # real request does not pay for ONNX Runtime's lazy initialisation.
    warmup_batch_sizes: tuple[int, ...] = ()
    # The largest size each named dynamic axis of the inputs may take. Triton's config has
    # no bound for a -1 dim, and a request at a huge size can cost gigabytes before any
    # kernel fails; the ONNX Runtime stand-in refuses larger sizes (INVALID_ARG). Rendered
    # as the `max_axis_sizes` parameter ("past_length=448,tokens=448").
    axis_limits: dict[str, int] = field(default_factory=dict)
    # Only for backend "ensemble": the steps Triton chains without Python in between.
    ensemble_steps: tuple[EnsembleStep, ...] = ()
    # Routes: the deadline of each downstream stage, rendered as `<stage>_budget_ms`
    # parameters that the route runtime reads (every BLS call has one).
    stage_budgets_ms: dict[str, float] = field(default_factory=dict)
    # Routes: the parameters that name a model the route cannot do its job without. It
    # still loads when one is missing, but says so (route_runtime.Dependencies, and
    # `marquee models`), rendered as the `composes` parameter.
    composes: tuple[str, ...] = ()
    # Set by a deployment target (marquee/targets.py), not by model specs: GPU execution
    # accelerators, and CUDA graphs where the backend supports them (TensorRT plans).
    gpu_accelerators: tuple[ExecutionAccelerator, ...] = ()
    cuda_graphs: bool = False
    # The file a GPU target deploys instead of `artifact` (e.g. a QDQ INT8 model for TensorRT).
    gpu_artifact: str | None = None

    def __post_init__(self) -> None:
        if self.max_batch_size < 0:
            raise ValueError(f"ModelSpec `{self.name}`: max_batch_size={self.max_batch_size}; must be >= 0")
        if (self.backend == "ensemble") != bool(self.ensemble_steps):
            raise ValueError(f"ModelSpec `{self.name}`: ensemble_steps go with backend 'ensemble' and only with it")
        unknown = [key for key in self.composes if key not in self.parameters]
        if unknown:
            raise ValueError(f"ModelSpec `{self.name}`: composes {unknown} name no parameter; known: {self.parameters}")
        named_axes = {d for t in self.inputs for d in t.dims if isinstance(d, str)}
        unbound = sorted(set(self.axis_limits) - named_axes)
        if unbound:
            raise ValueError(f"ModelSpec `{self.name}`: axis_limits name {unbound}; its inputs' axes: {named_axes}")
        names = [t.name for t in self.inputs + self.outputs]
        if len(names) != len(set(names)):
            raise ValueError(f"ModelSpec `{self.name}`: tensor names must be unique, got {names}")

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def input(self, name: str) -> TensorSpec:
        return _find(self.inputs, name, self.name)

    def output(self, name: str) -> TensorSpec:
        return _find(self.outputs, name, self.name)

    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: t.onnx_dynamic_axes(self.batched) for t in self.inputs + self.outputs}

    def perf_analyzer_shapes(self) -> list[str]:
        """`--shape` arguments for inputs with dynamic non-batch dims (none when fixed)."""
        return [
            f"{t.name}:{','.join(str(d) for d in t.dims)}"
            for t in self.inputs
            if any(isinstance(d, str) for d in t.dims)
        ]


def _find(tensors: tuple[TensorSpec, ...], name: str, model: str) -> TensorSpec:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    allowed = ", ".join(t.name for t in tensors)
    raise KeyError(f"model `{model}` has no tensor `{name}`; allowed: {allowed}")
