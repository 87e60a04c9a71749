"""A real tritonserver (the embedded 2.51 binary) on free ports, shared by the session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from marquee import render
from marquee.server import TritonServer, free_ports
from marquee.server.process import log_tail
from marquee.specs import DataType, DynamicBatching, ModelSpec, TensorSpec
from marquee.specs.ranker import RANKER_FP32

LOOKUP_TABLE = np.arange(10, dtype=np.float32)[:, None] * 10.0

# A model whose ONNX graph rejects some requests that pass Triton's own checks: Gather
# with an out-of-range index fails inside ONNX Runtime. The long queue delay makes
# concurrent requests land in one dynamic batch.
STRICT_LOOKUP = ModelSpec(
    name="strict_lookup",
    family="test",
    precision=RANKER_FP32.precision,
    max_batch_size=8,
    inputs=(TensorSpec("index", DataType.INT64, (1,)),),
    outputs=(TensorSpec("value", DataType.FP32, (1,)),),
    dynamic_batching=DynamicBatching(max_queue_delay_us=200_000),
    tolerance=RANKER_FP32.tolerance,
    budget=RANKER_FP32.budget,
)


def _write_strict_lookup(repository: Path) -> None:
    render.write([STRICT_LOOKUP], repository)
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["index", "axis"], ["flat"]),
            helper.make_node("Gather", ["table", "flat"], ["value"], axis=0),
        ],
        "strict_lookup",
        [helper.make_tensor_value_info("index", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["batch", 1])],
        [
            helper.make_tensor("table", TensorProto.FLOAT, LOOKUP_TABLE.shape, LOOKUP_TABLE.ravel()),
            helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repository / STRICT_LOOKUP.name / "1").mkdir(parents=True)
    onnx.save(model, repository / STRICT_LOOKUP.name / "1" / "model.onnx")


@pytest.fixture(scope="session")
def triton(exported_repository, tmp_path_factory):
    _write_strict_lookup(exported_repository)
    log_path = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    server = TritonServer(exported_repository, free_ports(), log_path=log_path).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def server_still_alive(request):
    """Fail at once, with the server's log, if a test leaves the server dead."""
    yield
    if "triton" in request.fixturenames:
        server = request.getfixturevalue("triton")
        if not server.alive():
            pytest.fail(f"tritonserver died during the test; log:\n{log_tail(server.log_path)}")
