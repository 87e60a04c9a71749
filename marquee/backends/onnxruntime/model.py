"""A Python-based Triton backend named `onnxruntime`.

Triton loads `<backend-dir>/onnxruntime/model.py` for every model whose config says
`backend: "onnxruntime"` when no native ONNX Runtime backend is installed (the
embedded server from the nvidia-pytriton wheel has only the Python backend). The same
`config.pbtxt` and `model.onnx` then run unchanged under the native backend in the NGC
container.

What it honours from the config: inputs/outputs (names, dtypes, dims), max_batch_size,
default_model_filename, and the native backend's `intra_op_thread_count`,
`inter_op_thread_count`, `execution_mode`, `enable_mem_arena` and
`memory.enable_memory_arena_shrinkage` parameters.

Each dynamic batch becomes one ONNX Runtime call: requests are validated one by one,
concatenated along the batch axis, run once, and the outputs are split back. A bad
request gets its own error response; the others in the batch still succeed.

Error codes: a malformed request (missing input, wrong dtype or shape, batch too large,
invalid UTF-8) and a value ONNX Runtime rejects as an invalid argument (an index out of
range, say) are the caller's mistake, INVALID_ARG (HTTP 400); any other ONNX Runtime
failure is INTERNAL (HTTP 500).
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class RequestError(Exception):
    """A single request is malformed; it gets an error response, the batch carries on."""


class TensorConfig:
    def __init__(self, entry: dict):
        self.name = entry["name"]
        self.data_type = entry["data_type"]
        self.numpy_dtype = pb_utils.triton_string_to_numpy(self.data_type)
        self.dims = [int(d) for d in entry.get("dims", [])]
        self.optional = bool(entry.get("optional", False))


def _session_options(parameters: dict[str, str]) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(parameters.get("intra_op_thread_count", "0"))
    options.inter_op_num_threads = int(parameters.get("inter_op_thread_count", "0"))
    # Native backend: execution_mode 0 = sequential, 1 = parallel.
    if parameters.get("execution_mode", "0") == "1":
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # "0" turns ONNX Runtime's CPU arena off: an arena keeps its largest call's
    # activations for the process's life (2 GB for a batch of Whisper encoder windows).
    options.enable_cpu_mem_arena = parameters.get("enable_mem_arena", "1") != "0"
    return options


def _run_options(parameters: dict[str, str]) -> ort.RunOptions:
    """`memory.enable_memory_arena_shrinkage` ("cpu:0"): give the arena's free chunks
    back after every call, as the native backend does with the same parameter."""
    options = ort.RunOptions()
    shrink = parameters.get("memory.enable_memory_arena_shrinkage")
    if shrink:
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", shrink)
    return options


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.model_name = config["name"]
        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.inputs = [TensorConfig(entry) for entry in config.get("input", [])]
        self.outputs = [TensorConfig(entry) for entry in config.get("output", [])]
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"{self.model_name}: model file not found: {path}")
        self.session = ort.InferenceSession(path, _session_options(parameters), providers=["CPUExecutionProvider"])
        self.run_options = _run_options(parameters)
        self._check_config_matches_model()
        self.shared_axes = _shared_named_axes(self.session)
        self.axis_limits = _axis_limits(self.session, parameters.get("max_axis_sizes", ""))

    def _check_config_matches_model(self) -> None:
        model_inputs = {i.name for i in self.session.get_inputs()}
        model_outputs = {o.name for o in self.session.get_outputs()}
        missing = [t.name for t in self.inputs if t.name not in model_inputs]
        missing += [t.name for t in self.outputs if t.name not in model_outputs]
        if missing:
            raise pb_utils.TritonModelException(
                f"{self.model_name}: config names tensors the ONNX model lacks: {missing}; "
                f"model inputs {sorted(model_inputs)}, outputs {sorted(model_outputs)}"
            )

    # -- request handling -------------------------------------------------------

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        valid: list[tuple[int, dict[str, np.ndarray], list[str]]] = []
        for index, request in enumerate(requests):
            try:
                valid.append((index, self._read_inputs(request), self._requested_outputs(request)))
            except RequestError as error:
                responses[index] = _error_response(str(error), invalid_input=True)
        for group in self._group_by_shape(valid):
            self._run_group(group, responses)
        return responses

    def _read_inputs(self, request) -> dict[str, np.ndarray]:
        arrays = {}
        for spec in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
            if tensor is None:
                if spec.optional:
                    continue
                raise RequestError(f"{self.model_name}: missing input `{spec.name}`")
            arrays[spec.name] = self._validated(spec, tensor.as_numpy())
        self._check_shared_axes(arrays)
        self._check_axis_limits(arrays)
        return arrays

    def _check_axis_limits(self, arrays: dict[str, np.ndarray]) -> None:
        """A named axis over the size its spec allows (`max_axis_sizes`) is refused before
        the graph runs: memory grows with it, and a fuzzed Whisper step at 1,500 tokens took
        a stub past 4 GB."""
        for name, index, axis, limit in self.axis_limits:
            if name in arrays and arrays[name].shape[index] > limit:
                raise RequestError(
                    f"{self.model_name}: input `{name}` has {arrays[name].shape[index]} on axis `{axis}`; "
                    f"allowed: 0 to {limit}"
                )

    def _check_shared_axes(self, arrays: dict[str, np.ndarray]) -> None:
        """Inputs that share a named axis in the ONNX graph (input_ids and attention_mask
        share `sequence`) must agree on its length; otherwise ONNX Runtime fails deep inside
        the graph with a broadcast error that reads like a server fault."""
        for axis, places in self.shared_axes.items():
            sizes = {name: arrays[name].shape[index] for name, index in places if name in arrays}
            if len(set(sizes.values())) > 1:
                shown = ", ".join(f"`{name}` {size}" for name, size in sizes.items())
                raise RequestError(f"{self.model_name}: inputs disagree on axis `{axis}` ({shown}); it must be equal")

    def _validated(self, spec: TensorConfig, array: np.ndarray) -> np.ndarray:
        if array.dtype != spec.numpy_dtype:
            raise RequestError(
                f"{self.model_name}: input `{spec.name}` has dtype {array.dtype}; expected {spec.data_type}"
            )
        expected = ([-1] if self.max_batch_size > 0 else []) + spec.dims
        if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape, strict=False)):
            raise RequestError(
                f"{self.model_name}: input `{spec.name}` has shape {list(array.shape)}; expected {expected}"
            )
        if self.max_batch_size > 0 and array.shape[0] > self.max_batch_size:
            raise RequestError(
                f"{self.model_name}: input `{spec.name}` batch size {array.shape[0]} exceeds "
                f"max_batch_size {self.max_batch_size}"
            )
        if spec.numpy_dtype == np.object_:
            # Triton hands BYTES as bytes objects; ONNX Runtime string tensors want str.
            try:
                return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array)
            except UnicodeDecodeError as error:
                raise RequestError(f"{self.model_name}: input `{spec.name}` is not valid UTF-8: {error}") from None
        return array

    def _requested_outputs(self, request) -> list[str]:
        names = request.requested_output_names()
        return list(names) if names else [o.name for o in self.outputs]

    def _group_by_shape(self, valid: list) -> list[list]:
        """Requests whose non-batch dims agree can share one ONNX Runtime call."""
        if self.max_batch_size == 0:
            return [[item] for item in valid]
        groups: dict[tuple, list] = {}
        for item in valid:
            key = tuple((name, array.shape[1:]) for name, array in sorted(item[1].items()))
            groups.setdefault(key, []).append(item)
        return list(groups.values())

    def _run_group(self, group: list, responses: list) -> None:
        try:
            self._run_batched(group, responses)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises plain exceptions
            if len(group) == 1:
                empty = _empty_inputs(group[0][1])
                invalid = _is_invalid_argument(error) or bool(empty)
                kind = "input rejected" if invalid else "inference failed"
                # An empty axis the graph cannot run on (a 0-token sequence) fails inside
                # ONNX Runtime as a plain FAIL, yet the request is what is wrong.
                why = f"{', '.join(empty)} empty; the graph cannot run on it: " if empty else ""
                message = f"{self.model_name}: {kind}: {why}{error}"
                responses[group[0][0]] = _error_response(message, invalid_input=invalid)
                return
            # One request poisoned the batch (e.g. a value the graph rejects); retry
            # one by one so that only the culprit gets the error.
            for item in group:
                self._run_group([item], responses)

    def _run_batched(self, group: list, responses: list) -> None:
        output_names = [o.name for o in self.outputs]
        if len(group) == 1:
            feeds = group[0][1]
        else:
            feeds = {name: np.concatenate([item[1][name] for item in group]) for name in group[0][1]}
        results = dict(zip(output_names, self.session.run(output_names, feeds, self.run_options), strict=False))
        start = 0
        for index, arrays, requested in group:
            size = next(iter(arrays.values())).shape[0] if self.max_batch_size > 0 else None
            end = start + size if size is not None else None
            tensors = [
                pb_utils.Tensor(
                    name, np.ascontiguousarray(results[name][start:end] if size is not None else results[name])
                )
                for name in requested
            ]
            responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
            start = end if end is not None else 0

    def finalize(self) -> None:
        self.session = None


def _shared_named_axes(session) -> dict[str, list[tuple[str, int]]]:
    """Named (symbolic) axes the graph's inputs share: axis -> [(input, axis index)]."""
    places: dict[str, list[tuple[str, int]]] = {}
    for tensor in session.get_inputs():
        for index, dim in enumerate(tensor.shape):
            if isinstance(dim, str):
                places.setdefault(dim, []).append((tensor.name, index))
    return {axis: where for axis, where in places.items() if len(where) > 1}


def _axis_limits(session, rendered: str) -> list[tuple[str, int, str, int]]:
    """(input, axis index, axis name, limit) for every input axis `rendered`
    ("past_length=448,tokens=448") bounds, found by the graph's symbolic axis names."""
    limits = {axis: int(size) for axis, _, size in (item.partition("=") for item in rendered.split(",") if item)}
    found = [
        (node.name, index, dim, limits[dim])
        for node in session.get_inputs()
        for index, dim in enumerate(node.shape)
        if isinstance(dim, str) and dim in limits
    ]
    unmatched = set(limits) - {axis for _, _, axis, _ in found}
    if unmatched:
        raise pb_utils.TritonModelException(f"max_axis_sizes names axes the ONNX graph lacks: {sorted(unmatched)}")
    return found


def _is_invalid_argument(error: Exception) -> bool:
    """ONNX Runtime raises `InvalidArgument` when the input's values are what is wrong."""
    return type(error).__name__ in ("InvalidArgument", "InvalidProtobuf") or "INVALID_ARGUMENT" in str(error)


def _empty_inputs(arrays: dict[str, np.ndarray]) -> list[str]:
    """Inputs with a zero-length axis, as "input `name` shape [1, 0]"."""
    return [f"input `{name}` shape {list(array.shape)}" for name, array in arrays.items() if 0 in array.shape]


def _error_response(message: str, invalid_input: bool = False):
    code = pb_utils.TritonError.INVALID_ARG if invalid_input else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
