"""A Python-based Triton backend named `dali`.

Triton loads `<backend-dir>/dali/model.py` for every model whose config says
`backend: "dali"` when no native DALI backend is installed (the embedded server from
the nvidia-pytriton wheel has only the Python backend). In the NGC container the native
backend loads the same config and its `model.dali` (GPU operators) instead.

The native file holds "mixed"/GPU operators that cannot run without CUDA, so this
backend runs the CPU serialization of the same pipeline, `model.cpu.dali`, next to it
(falls back to the default file when that is absent).

Inputs are encoded bytes, one UINT8 row per item ([batch, bytes]); a row may carry
trailing zero padding, which image decoders ignore. All requests of a dynamic batch
run as one DALI batch. DALI invalidates a pipeline on any operator error (a corrupt
image), so on failure this backend rebuilds the pipeline and reruns the items one by
one: only requests holding a bad item get an error, and the instance keeps serving.

Error codes: an item that is missing, empty, too large or cannot be decoded is the
caller's mistake, INVALID_ARG (HTTP 400): the bytes are not an image (or audio) this
pipeline reads. Anything else that fails is INTERNAL.

Every item's header is read before decoding, and what it states outside the limits is
refused as the caller's mistake, so a small file cannot make a decoder allocate what its
header promises:
- images (`media` "image"): JPEG or PNG only, at most `max_image_pixels` (image_header.py,
  next to this file; the moderate_image route checks with the same code). Without it,
  the long fuzz profile crashed the stub: a batch of hostile items made DALI's OpenCV
  decoder ask for 52 TB, then segfault;
- audio (`media` "audio"): sample rate, channel count and duration (audio_header.py).

Parameters (optional): `num_threads` (DALI CPU threads, default 1),
`max_image_bytes` (items above it are refused before decoding, default 20 MiB; a
pipeline for other media names the same limit `max_input_bytes`) and `media` (the word
error messages use for an item, default "image": "cannot decode audio: ..."),
`max_duration_s` (audio: the longest clip a header may state, default 2 hours),
`max_image_pixels` (images: the most pixels a header may state, default 40 million).
The native DALI backend in the NGC container reads none of these limits.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the header checks travel with this file
from audio_header import AudioRejected, check_audio  # noqa: E402
from image_header import ImageRejected, check_image  # noqa: E402

CPU_SERIALIZATION = "model.cpu.dali"
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_DURATION_S = 2 * 60 * 60.0
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


class ItemError(Exception):
    """One item cannot be processed; its request gets an error, the batch carries on."""


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.model_name = config["name"]
        self.max_batch_size = int(config.get("max_batch_size", 0))
        if self.max_batch_size < 1:
            raise pb_utils.TritonModelException(f"{self.model_name}: the dali backend needs max_batch_size >= 1")
        inputs = config.get("input", [])
        if len(inputs) != 1:
            raise pb_utils.TritonModelException(
                f"{self.model_name}: expected one input (the pipeline's external_source), got {len(inputs)}"
            )
        self.input_name = inputs[0]["name"]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.num_threads = int(parameters.get("num_threads", "1"))
        # The limit's parameter name, as error messages must name it.
        self.limit_parameter = "max_input_bytes" if "max_input_bytes" in parameters else "max_image_bytes"
        self.max_image_bytes = int(parameters.get(self.limit_parameter, DEFAULT_MAX_IMAGE_BYTES))
        self.media = parameters.get("media", "image")
        self.max_duration_s = float(parameters.get("max_duration_s", DEFAULT_MAX_DURATION_S))
        self.max_image_pixels = int(parameters.get("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS))
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        default = os.path.join(version_dir, config.get("default_model_filename") or "model.dali")
        cpu = os.path.join(version_dir, CPU_SERIALIZATION)
        path = cpu if os.path.isfile(cpu) else default
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"{self.model_name}: no serialized pipeline at {cpu} or {default}")
        with open(path, "rb") as f:
            self.serialized = f.read()
        self.pipeline = self._build()

    def _build(self):
        from nvidia.dali.pipeline import Pipeline

        pipeline = Pipeline.deserialize(
            serialized_pipeline=self.serialized,
            batch_size=self.max_batch_size,
            num_threads=self.num_threads,
            device_id=None,
            prefetch_queue_depth=1,
        )
        pipeline.build()
        names = [name for name, _ in self.outputs]
        # Outputs are positional in DALI; the config must list them in pipeline order.
        if len(pipeline.output_dtype()) != len(names):
            raise pb_utils.TritonModelException(
                f"{self.model_name}: config lists {len(names)} outputs {names}; the pipeline has "
                f"{len(pipeline.output_dtype())}"
            )
        return pipeline

    # -- request handling -------------------------------------------------------

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        items: list[tuple[int, np.ndarray]] = []  # (request index, encoded bytes)
        for index, request in enumerate(requests):
            try:
                items += [(index, row) for row in self._rows(request)]
            except ItemError as error:
                responses[index] = _error(f"{self.model_name}: {error}")
        results: dict[int, list] = {}
        failed: dict[int, str] = {}
        for start in range(0, len(items), self.max_batch_size):
            self._run_chunk(items[start : start + self.max_batch_size], results, failed)
        for index, request in enumerate(requests):
            if responses[index] is not None:
                continue
            if index in failed:
                responses[index] = _error(f"{self.model_name}: {failed[index]}")
                continue
            requested = set(request.requested_output_names() or [name for name, _ in self.outputs])
            per_output = zip(*results[index], strict=True)
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(np.stack(samples).astype(dtype, copy=False)))
                for (name, dtype), samples in zip(self.outputs, per_output, strict=True)
                if name in requested
            ]
            responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses

    def _rows(self, request) -> list[np.ndarray]:
        tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
        if tensor is None:
            raise ItemError(f"missing input `{self.input_name}`")
        array = tensor.as_numpy()
        if array.dtype != np.uint8 or array.ndim != 2:
            raise ItemError(
                f"input `{self.input_name}` has dtype {array.dtype} shape {list(array.shape)}; "
                "expected UINT8 [batch, bytes]"
            )
        for position, row in enumerate(array):
            if row.size == 0:
                raise ItemError(f"input `{self.input_name}` item {position} is empty")
            if row.size > self.max_image_bytes:
                raise ItemError(
                    f"input `{self.input_name}` item {position} has {row.size} bytes; "
                    f"the limit (parameter {self.limit_parameter}) is {self.max_image_bytes}"
                )
            self._check_header(row, position)
        return list(array)

    def _check_header(self, row: np.ndarray, position: int) -> None:
        where = f"input `{self.input_name}` item {position}"
        try:
            if self.media == "audio":
                check_audio(row.tobytes(), self.max_duration_s)
            elif self.media == "image":
                # Rows of a batch are zero-padded to the longest; the end markers sit before the padding.
                check_image(_without_padding(row), self.max_image_bytes, self.max_image_pixels)
        except (AudioRejected, ImageRejected) as rejected:
            raise ItemError(f"cannot decode {self.media}: {where}: {rejected}") from None

    def _run_chunk(self, chunk: list, results: dict, failed: dict) -> None:
        chunk = [(index, row) for index, row in chunk if index not in failed]
        if not chunk:
            return
        try:
            outputs = self.pipeline.run(**{self.input_name: [row for _, row in chunk]})
        except Exception as error:  # noqa: BLE001 - DALI raises RuntimeError for any operator error
            self.pipeline = self._build()  # the failed pipeline object is no longer valid
            if len(chunk) == 1:
                failed[chunk[0][0]] = f"cannot decode {self.media}: {_dali_reason(error)}"
                return
            for item in chunk:  # isolate the culprit
                self._run_chunk([item], results, failed)
            return
        for position, (index, _) in enumerate(chunk):
            sample = [np.array(output[position]) for output in outputs]
            results.setdefault(index, []).append(sample)

    def finalize(self) -> None:
        self.pipeline = None


def _without_padding(row: np.ndarray) -> bytes:
    """The item's bytes without the batch's trailing zeros. Vectorised: np.trim_zeros walks
    them in Python, 2.8 s for a 50 kB image padded to a 2 MB neighbour."""
    nonzero = row[::-1] != 0
    first = int(nonzero.argmax())
    return row[: row.size - first].tobytes() if nonzero[first] else b""


def _dali_reason(error: Exception) -> str:
    """DALI's own reason, from its multi-line message (the lines after "encountered:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if "encountered:" in lines:
        reason = [
            line
            for line in lines[lines.index("encountered:") + 1 :]
            if "no longer valid" not in line and not line.startswith("C++ context")  # DALI's source location
        ]
        if reason:
            return " ".join(reason).rstrip(" :")[:300]
    return (lines or [type(error).__name__])[-1][:300]


def _error(message: str):
    """Every error this backend reports is about an item the caller sent."""
    return pb_utils.InferenceResponse(
        output_tensors=[], error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    )
