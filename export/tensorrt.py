"""TensorRT plans for GPU hosts, built from the exported ONNX files where TensorRT runs.

The `ngc-gpu` target does not need them: its ONNX models carry ONNX Runtime's TensorRT
execution provider, which builds (and caches) engines when Triton loads the model, so
export needs no GPU. A plan built ahead of time skips that build on a cold start and is
what a `backend: "tensorrt"` deployment loads (`model.plan`, next to `model.onnx`).
Plans are specific to the GPU model and TensorRT version that built them, so they are
built on the GPU host, never here: this code has never run on this project's machines.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
from pathlib import Path

from marquee.specs.base import ModelSpec, Precision

log = logging.getLogger(__name__)
PLAN_FILE = "model.plan"
WORKSPACE_BYTES = 1 << 30


def missing_prerequisites() -> list[str]:
    """What this host lacks to build plans ([] when it can)."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the `tensorrt` Python package (NVIDIA's wheel, matching the container's TensorRT)")
    if not _gpu_present():
        missing.append("a CUDA GPU (`nvidia-smi -L` lists none)")
    return missing


def _gpu_present() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return listing.returncode == 0 and "GPU" in listing.stdout


def plannable(spec: ModelSpec) -> bool:
    """ONNX models with fixed non-batch dims: one optimization profile over the batch axis."""
    fixed = not any(isinstance(d, str) for t in spec.inputs for d in t.dims)
    return spec.backend == "onnxruntime" and spec.batched and fixed


def build_plan(spec: ModelSpec, onnx_path: Path, plan_path: Path) -> Path:
    """Parse the ONNX file and build a serialized engine: FP16 for float models, INT8 for
    a QDQ graph (its scales are in the graph), batch 1 to max_batch_size."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; TensorRT 8 needs the flag.
    flags = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flags is None else 1 << int(flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{spec.name}: TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.set_flag(trt.BuilderFlag.INT8 if spec.precision is Precision.INT8 else trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for tensor in spec.inputs:
        dims = [int(d) for d in tensor.dims]
        top = spec.max_batch_size
        profile.set_shape(tensor.name, (1, *dims), (max(1, top // 2), *dims), (top, *dims))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{spec.name}: TensorRT failed to build an engine from {onnx_path}")
    plan_path.write_bytes(bytes(serialized))
    return plan_path


def build_plans(specs: list[ModelSpec], repository: Path) -> list[Path]:
    """Plans for every exported, plannable model; the caller checks prerequisites first."""
    built = []
    for spec in filter(plannable, specs):
        version_dir = Path(repository) / spec.name / str(spec.version)
        source = version_dir / (spec.gpu_artifact or spec.artifact)
        if source.is_file():
            log.info("building TensorRT plan for %s from %s", spec.name, source.name)
            built.append(build_plan(spec, source, version_dir / PLAN_FILE))
    return built
