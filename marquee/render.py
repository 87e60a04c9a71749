"""Render `config.pbtxt` from a ModelSpec through Triton's own protobuf schema.

spec -> dict -> `json_format.ParseDict(ModelConfig)` -> `text_format`: an unknown field
or a wrong type fails here, not when Triton loads the model.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from marquee.errors import ConfigDriftError
from marquee.specs.base import DynamicBatching, EnsembleStep, InstanceGroup, ModelSpec, TensorSpec
from marquee.targets import EMBEDDED_CPU, Target

# Read by the ONNX Runtime stand-in (marquee/backends/onnxruntime/model.py).
AXIS_LIMITS_PARAMETER = "max_axis_sizes"
HEADER = "# Rendered by `marquee render` from marquee/specs; do not edit by hand.\n"


def _tensor(t: TensorSpec) -> dict:
    return {"name": t.name, "data_type": t.dtype.config_name, "dims": t.triton_dims}


def config_dict(spec: ModelSpec) -> dict:
    config: dict = {
        "name": spec.name,
        "max_batch_size": spec.max_batch_size,
        "input": [_tensor(t) for t in spec.inputs],
        "output": [_tensor(t) for t in spec.outputs],
        "version_policy": {"specific": {"versions": [spec.version]}},
    }
    if spec.backend == "ensemble":
        # Ensembles have no backend, instances or batching of their own.
        config["platform"] = "ensemble"
        config["ensemble_scheduling"] = {"step": [_step(step) for step in spec.ensemble_steps]}
        return config
    config["backend"] = spec.backend
    config["default_model_filename"] = spec.artifact
    config["instance_group"] = [_instance_group(g) for g in spec.instance_groups]
    if spec.dynamic_batching is not None:
        config["dynamic_batching"] = _dynamic_batching(spec.dynamic_batching)
    if spec.warmup_batch_sizes:
        config["model_warmup"] = [_warmup(spec, size) for size in spec.warmup_batch_sizes]
    optimization = _optimization(spec)
    if optimization:
        config["optimization"] = optimization
    parameters = {**spec.parameters, **stage_budget_parameters(spec)}
    if spec.composes:
        parameters["composes"] = ",".join(spec.composes)
    if spec.axis_limits:
        limits = sorted(spec.axis_limits.items())
        parameters[AXIS_LIMITS_PARAMETER] = ",".join(f"{axis}={size}" for axis, size in limits)
    if parameters:
        config["parameters"] = {k: {"string_value": v} for k, v in sorted(parameters.items())}
    return config


def stage_budget_parameters(spec: ModelSpec) -> dict[str, str]:
    """`<stage>_budget_ms` for each stage deadline of a route (read by route_runtime)."""
    clashes = sorted(f"{stage}_budget_ms" for stage in spec.stage_budgets_ms if f"{stage}_budget_ms" in spec.parameters)
    if clashes:
        raise ValueError(f"ModelSpec `{spec.name}`: {clashes} come from stage_budgets_ms; drop them from parameters")
    return {f"{stage}_budget_ms": f"{ms:g}" for stage, ms in spec.stage_budgets_ms.items()}


def _optimization(spec: ModelSpec) -> dict:
    optimization: dict = {}
    if spec.gpu_accelerators:
        optimization["execution_accelerators"] = {
            "gpu_execution_accelerator": [
                {"name": a.name, "parameters": dict(a.parameters)} for a in spec.gpu_accelerators
            ]
        }
    if spec.cuda_graphs:
        optimization["cuda"] = {"graphs": True}
    return optimization


def _instance_group(group: InstanceGroup) -> dict:
    entry: dict = {"count": group.count, "kind": group.kind}
    if group.rate_limiter is not None:
        entry["rate_limiter"] = {
            "resources": [{"name": name, "count": count} for name, count in group.rate_limiter.resources],
            "priority": group.rate_limiter.priority,
        }
    return entry


def _dynamic_batching(batching: DynamicBatching) -> dict:
    entry: dict = {"max_queue_delay_microseconds": batching.max_queue_delay_us}
    if batching.preferred_batch_sizes:
        entry["preferred_batch_size"] = list(batching.preferred_batch_sizes)
    if batching.priority_levels:
        entry["priority_levels"] = batching.priority_levels
        entry["default_priority_level"] = batching.default_priority_level
    if batching.default_queue_policy is not None:
        policy = batching.default_queue_policy
        entry["default_queue_policy"] = {
            "timeout_action": policy.timeout_action,
            "default_timeout_microseconds": policy.default_timeout_us,
            "allow_timeout_override": policy.allow_timeout_override,
            "max_queue_size": policy.max_queue_size,
        }
    return entry


def _step(step: EnsembleStep) -> dict:
    return {"model_name": step.model, "model_version": -1, "input_map": step.input_map, "output_map": step.output_map}


def _warmup(spec: ModelSpec, batch_size: int) -> dict:
    if any(d == -1 for t in spec.inputs for d in t.triton_dims):
        raise ValueError(f"ModelSpec `{spec.name}`: warmup needs fixed input dims, got dynamic ones")
    inputs = {t.name: {"data_type": t.dtype.config_name, "dims": t.triton_dims, "zero_data": True} for t in spec.inputs}
    return {"name": f"zeros_batch_{batch_size}", "batch_size": batch_size, "inputs": inputs}


def to_model_config(spec: ModelSpec) -> model_config_pb2.ModelConfig:
    return json_format.ParseDict(config_dict(spec), model_config_pb2.ModelConfig())


def render(spec: ModelSpec, target: Target | None = EMBEDDED_CPU) -> str:
    """`config.pbtxt` text of the spec as `target` deploys it (None: the spec as written)."""
    spec = target.deploy(spec) if target else spec
    text = text_format.MessageToString(to_model_config(spec))
    if spec.max_batch_size == 0:
        # proto3 omits zero scalars, but Triton reads a missing max_batch_size as
        # "unknown" and may auto-complete it; spell the 0 out.
        text = text.replace(f'name: "{spec.name}"\n', f'name: "{spec.name}"\nmax_batch_size: 0\n', 1)
    return HEADER + text


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def config_path(repository: Path, spec: ModelSpec) -> Path:
    return repository / spec.name / "config.pbtxt"


def write(specs: list[ModelSpec], repository: Path, target: Target = EMBEDDED_CPU) -> list[Path]:
    written = []
    for spec in specs:
        path = config_path(repository, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(spec, target))
        written.append(path)
    return written


def stale(specs: list[ModelSpec], repository: Path, target: Target = EMBEDDED_CPU) -> list[Path]:
    """Committed configs that are missing or differ from what their spec renders."""
    return [
        config_path(repository, spec)
        for spec in specs
        if not config_path(repository, spec).is_file()
        or config_path(repository, spec).read_text() != render(spec, target)
    ]


def check(specs: list[ModelSpec], repository: Path, target: Target = EMBEDDED_CPU) -> None:
    drifted = stale(specs, repository, target)
    if drifted:
        listing = "\n".join(f"  {p}" for p in drifted)
        raise ConfigDriftError(
            f"{len(drifted)} {target.name} config(s) are stale; run `marquee render --target {target.name}`:\n{listing}"
        )


def write_variant(repository: Path, base: ModelSpec, name: str, **parameters: str) -> Path:
    """Deploy an already exported model again under another name, with some parameters
    changed (an A/B variant, a route wired to a test double). Renders the variant's
    config and copies the base's version directory; returns the copy."""
    budgets = {k.removesuffix("_budget_ms"): float(v) for k, v in parameters.items() if k.endswith("_budget_ms")}
    others = {k: v for k, v in parameters.items() if not k.endswith("_budget_ms")}
    variant = dataclasses.replace(
        base,
        name=name,
        parameters={**base.parameters, **others},
        stage_budgets_ms={**base.stage_budgets_ms, **budgets},
    )
    write([variant], repository)
    target = repository / name / str(base.version)
    shutil.copytree(repository / base.name / str(base.version), target, dirs_exist_ok=True)
    return target
