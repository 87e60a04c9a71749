"""Deployment targets: where a model repository runs, and what that changes in each config.

A model's spec says what the model is (tensors, batching, tolerances, budgets); the
target says how it is deployed there. One spec renders to three repositories:

| target         | server                               | ONNX models                        | DALI              |
|----------------|--------------------------------------|------------------------------------|-------------------|
| `embedded-cpu` | the embedded tritonserver (this repo)| Python-based `onnxruntime`, CPU    | Python-based, CPU |
| `ngc-cpu`      | NGC container, no GPU                | native ONNX Runtime backend, CPU   | native, CPU file  |
| `ngc-gpu`      | NGC container on a GPU host          | native ORT + TensorRT EP (FP16/INT8)| native, GPU file |

The target supplies the instance kind and count, ONNX Runtime's thread defaults (CPU),
the TensorRT accelerator and warmup (GPU), which DALI serialization is loaded, and the
route parameters that differ (on a GPU host retrieval uses the exact ONNX search rather
than the CPU-only FAISS index). `ngc-cpu` and `ngc-gpu` have never run here: no GPU and
no Docker engine exist on the machines this project is built on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from marquee.specs.base import ExecutionAccelerator, InstanceGroup, ModelSpec, Precision

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CPU_DALI_FILE = "model.cpu.dali"
# Where TensorRT engines built by the ONNX Runtime TensorRT EP are cached inside the
# container, so a restart does not rebuild them (mount a volume there to keep them).
TRT_ENGINE_CACHE = "/tmp/marquee-trt-cache"
TRT_WORKSPACE_BYTES = str(1 << 30)
# ONNX Runtime on a CPU host: one intra-op thread per instance; concurrency comes from
# instances and batching (spinning pools fight each other on small hosts otherwise).
CPU_THREAD_DEFAULTS = {"intra_op_thread_count": "1", "inter_op_thread_count": "1"}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    gpu: bool
    # True: the embedded server, whose Python-based backends stand in for native ones.
    embedded: bool
    repository: Path
    # Route parameters that differ on this target: model name -> {parameter: value}.
    route_parameters: dict[str, dict[str, str]] = field(default_factory=dict)

    def deploy(self, spec: ModelSpec) -> ModelSpec:
        """The spec as this target deploys it."""
        if spec.backend == "ensemble":
            return spec
        changes: dict = {"instance_groups": self._instance_groups(spec)}
        if spec.backend == "onnxruntime":
            changes.update(self._onnx(spec))
        elif spec.backend == "dali" and not self.gpu and not self.embedded:
            # The native DALI backend loads default_model_filename; on a CPU host that must
            # be the CPU serialization (the default file holds GPU operators).
            changes["artifact"] = CPU_DALI_FILE
        overrides = self.route_parameters.get(spec.name)
        if overrides:
            unknown = sorted(set(overrides) - set(spec.parameters))
            if unknown:
                raise ValueError(f"target {self.name}: {spec.name} has no parameters {unknown}")
            changes["parameters"] = {**spec.parameters, **overrides}
        return dataclasses.replace(spec, **changes)

    def _kind(self, spec: ModelSpec) -> str:
        # Python models are control flow (or FAISS on the CPU): they stay on the CPU.
        return "KIND_GPU" if self.gpu and spec.backend in ("onnxruntime", "dali", "tensorrt") else "KIND_CPU"

    def _instance_groups(self, spec: ModelSpec) -> tuple[InstanceGroup, ...]:
        kind = self._kind(spec)
        groups = spec.instance_groups or (InstanceGroup(),)
        if kind == "KIND_GPU":
            # One instance per GPU: the GPU runs concurrent requests through dynamic batching.
            return tuple(dataclasses.replace(g, count=1, kind=kind) for g in groups)
        return tuple(dataclasses.replace(g, kind=kind) for g in groups)

    def _onnx(self, spec: ModelSpec) -> dict:
        if not self.gpu:
            return {"parameters": {**CPU_THREAD_DEFAULTS, **spec.parameters}}
        parameters = {k: v for k, v in spec.parameters.items() if k not in CPU_THREAD_DEFAULTS}
        changes: dict = {"parameters": parameters, "gpu_accelerators": (tensorrt_accelerator(spec),)}
        if spec.gpu_artifact:
            changes["artifact"] = spec.gpu_artifact
        if spec.batched and not any(isinstance(d, str) for t in spec.inputs for d in t.dims):
            # TensorRT builds an engine per shape profile on first use; warm up at the
            # smallest and largest batch so no live request pays for the build.
            changes["warmup_batch_sizes"] = tuple(sorted({1, spec.max_batch_size}))
        return changes


def tensorrt_accelerator(spec: ModelSpec) -> ExecutionAccelerator:
    """ONNX Runtime's TensorRT EP: INT8 for a QDQ model (its scales are in the graph, so no
    calibration table), FP16 otherwise. Dynamically quantised INT8 graphs (no QDQ) are a
    CPU format; a GPU host serves their FP32 siblings' precision through FP16."""
    int8 = spec.precision is Precision.INT8 and spec.gpu_artifact is not None
    return ExecutionAccelerator(
        "tensorrt",
        (
            ("precision_mode", "INT8" if int8 else "FP16"),
            ("max_workspace_size_bytes", TRT_WORKSPACE_BYTES),
            ("trt_engine_cache_enable", "1"),
            ("trt_engine_cache_path", f"{TRT_ENGINE_CACHE}/{spec.name}"),
        ),
    )


EMBEDDED_CPU = Target(
    name="embedded-cpu",
    description="the embedded tritonserver 2.51 (nvidia-pytriton wheel), Python-based backends, CPU",
    gpu=False,
    embedded=True,
    repository=PROJECT_ROOT / "model_repository",
)
NGC_CPU = Target(
    name="ngc-cpu",
    description="NGC tritonserver container without a GPU: native ONNX Runtime and DALI backends on the CPU",
    gpu=False,
    embedded=False,
    repository=PROJECT_ROOT / "deploy" / "model_repository" / "ngc-cpu",
)
NGC_GPU = Target(
    name="ngc-gpu",
    description="NGC tritonserver container on a GPU host: TensorRT EP (FP16, INT8 from QDQ), DALI on the GPU",
    gpu=True,
    embedded=False,
    repository=PROJECT_ROOT / "deploy" / "model_repository" / "ngc-gpu",
    route_parameters={
        # The exact MatMul + TopK search is the GPU's job; FAISS IVF is the CPU's shortcut.
        "recommend": {"retrieve_model": "retrieve"},
        # Dynamic INT8 is a CPU format; on the GPU the FP32 classifier runs at TensorRT FP16.
        "moderate_text": {"default_precision": "fp32"},
        # NVDEC decodes through DALI's mixed backend; boundaries at TransNetV2 FP32 (TensorRT FP16).
        "analyze_video": {"decode_device": "gpu", "boundary_model": "transnetv2_fp32"},
    },
)
TARGETS: dict[str, Target] = {t.name: t for t in (EMBEDDED_CPU, NGC_CPU, NGC_GPU)}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise ValueError(f"target {name!r}; allowed: {', '.join(TARGETS)}")
    return TARGETS[name]
