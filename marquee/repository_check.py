"""What Triton would refuse at load, caught before a server (or a GPU) is ever started.

`check_repository` parses every `config.pbtxt` of a rendered repository with Triton's
own `model_config` protobuf, then checks what the schema cannot:
- platform and backend agree (ensembles have no backend; a backend's file has its kind);
- dims agree with `max_batch_size` (no empty dims, only -1 for a variable size, warmup
  batches within the maximum);
- ensembles connect: each step's model exists, its input and output names are that
  model's tensors, every step input is an ensemble input or an earlier step's output,
  and every ensemble output is produced, with matching dtypes;
- instance kinds fit the target (KIND_GPU only where a GPU is, never for Python models);
- where a version folder has been exported, the backend's file is in it.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from marquee.specs.base import ModelSpec
from marquee.targets import Target

BACKEND_FILES = {"onnxruntime": (".onnx",), "python": (".py",), "dali": (".dali",), "tensorrt": (".plan", ".engine")}
KIND_NAMES = model_config_pb2.ModelInstanceGroup.Kind.Name
TYPE_NAMES = model_config_pb2.DataType.Name


def load_configs(repository: Path, specs: list[ModelSpec]) -> tuple[dict[str, model_config_pb2.ModelConfig], list[str]]:
    configs, problems = {}, []
    for spec in specs:
        path = Path(repository) / spec.name / "config.pbtxt"
        try:
            configs[spec.name] = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        except (OSError, text_format.ParseError) as error:
            problems.append(f"{spec.name}: config.pbtxt does not parse: {error}")
    return configs, problems


def check_repository(specs: list[ModelSpec], repository: Path, target: Target) -> list[str]:
    """Every problem found, one line each naming the model; [] when the repository is clean."""
    configs, problems = load_configs(repository, specs)
    for name, config in configs.items():
        problems += [f"{name}: {p}" for p in _check_model(config, target)]
        if config.platform == "ensemble":
            problems += [f"{name}: {p}" for p in _check_ensemble(config, configs)]
        problems += [f"{name}: {p}" for p in _check_files(Path(repository) / name, config)]
    return problems


def _check_model(config, target: Target) -> list[str]:
    problems = []
    if config.platform == "ensemble":
        if config.backend:
            problems.append(f"an ensemble has no backend, got backend {config.backend!r}")
        if config.instance_group:
            problems.append("an ensemble has no instance groups")
    elif config.backend not in BACKEND_FILES:
        problems.append(f"backend {config.backend!r}; allowed: {', '.join(BACKEND_FILES)} (or platform ensemble)")
    elif not config.default_model_filename.endswith(BACKEND_FILES[config.backend]):
        problems.append(
            f"backend {config.backend} loads {config.default_model_filename!r}; expected a "
            f"{' or '.join(BACKEND_FILES[config.backend])} file"
        )
    for tensor in [*config.input, *config.output]:
        if not tensor.dims:
            problems.append(f"tensor {tensor.name} has no dims (a batch-only tensor needs dims [1])")
        if any(d < -1 or d == 0 for d in tensor.dims):
            problems.append(f"tensor {tensor.name} dims {list(tensor.dims)}: sizes are positive, or -1 for variable")
    for warmup in config.model_warmup:
        if config.max_batch_size and not 1 <= warmup.batch_size <= config.max_batch_size:
            problems.append(f"warmup {warmup.name} batch {warmup.batch_size} outside 1..{config.max_batch_size}")
        if not config.max_batch_size and warmup.batch_size > 1:
            problems.append(f"warmup {warmup.name} batches {warmup.batch_size} rows of an unbatched model")
        names = {t.name for t in config.input}
        if set(warmup.inputs) != names:
            problems.append(f"warmup {warmup.name} inputs {sorted(warmup.inputs)} != model inputs {sorted(names)}")
    for group in config.instance_group:
        kind = KIND_NAMES(group.kind)
        if kind == "KIND_GPU" and not target.gpu:
            problems.append(f"KIND_GPU instances on target {target.name}, which has no GPU")
        if kind == "KIND_GPU" and config.backend == "python":
            problems.append("a Python model on KIND_GPU: its code runs on the CPU; use KIND_CPU")
    if config.optimization.execution_accelerators.gpu_execution_accelerator and not target.gpu:
        problems.append(f"a GPU execution accelerator on target {target.name}, which has no GPU")
    return problems


def _tensors(config) -> tuple[dict[str, int], dict[str, int]]:
    return {t.name: t.data_type for t in config.input}, {t.name: t.data_type for t in config.output}


def _check_ensemble(ensemble, configs: dict) -> list[str]:
    problems = []
    ensemble_inputs, ensemble_outputs = _tensors(ensemble)
    available = dict(ensemble_inputs)  # tensor name inside the ensemble -> dtype
    for index, step in enumerate(ensemble.ensemble_scheduling.step):
        where = f"step {index} ({step.model_name})"
        model = configs.get(step.model_name)
        if model is None:
            problems.append(f"{where}: no such model in the repository")
            continue
        if model.max_batch_size < ensemble.max_batch_size:
            problems.append(
                f"{where}: max_batch_size {model.max_batch_size} < the ensemble's {ensemble.max_batch_size}"
            )
        inputs, outputs = _tensors(model)
        for model_name, ensemble_name in step.input_map.items():
            if model_name not in inputs:
                problems.append(f"{where}: input_map key {model_name!r} is not an input of {step.model_name}")
            elif ensemble_name not in available:
                problems.append(f"{where}: {ensemble_name!r} is neither an ensemble input nor an earlier output")
            elif available[ensemble_name] != inputs[model_name]:
                problems.append(
                    f"{where}: {ensemble_name!r} is {TYPE_NAMES(available[ensemble_name])}, "
                    f"{step.model_name}.{model_name} wants {TYPE_NAMES(inputs[model_name])}"
                )
        missing = sorted(set(inputs) - set(step.input_map))
        if missing:
            problems.append(f"{where}: inputs {missing} of {step.model_name} are not mapped")
        for model_name, ensemble_name in step.output_map.items():
            if model_name not in outputs:
                problems.append(f"{where}: output_map key {model_name!r} is not an output of {step.model_name}")
            else:
                available[ensemble_name] = outputs[model_name]
    for name, dtype in ensemble_outputs.items():
        if name not in available:
            problems.append(f"ensemble output {name!r} is produced by no step")
        elif available[name] != dtype:
            problems.append(
                f"ensemble output {name!r} is {TYPE_NAMES(available[name])}; config says {TYPE_NAMES(dtype)}"
            )
    return problems


def _check_files(model_dir: Path, config) -> list[str]:
    """Exported versions must hold the file the backend loads (unexported ones are skipped)."""
    if config.platform == "ensemble" or not model_dir.is_dir():
        return []
    problems = []
    for version in sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        if any(version.iterdir()) and not (version / config.default_model_filename).is_file():
            problems.append(f"version {version.name} lacks {config.default_model_filename} (the backend loads it)")
    return problems
