"""A real tritonserver (the embedded 2.51 binary) on free ports, shared by the session."""

from __future__ import annotations

import dataclasses
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
from marquee.specs.recommend import RECOMMEND, RECOMMEND_MODELS

ROUTE_ITEMS = 20_000

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


# Stand-ins for the ranker that misbehave, to prove the route degrades instead of failing.
_MISBEHAVING_RANKER = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        if {failing}:
            return [pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError("ranker exploded"))
                    for _ in requests]
        time.sleep(0.2)  # far over the route's 10 ms ranking budget
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, "categorical").as_numpy().shape[0]
            probability = pb_utils.Tensor("probability", np.full((rows, 1), 0.5, np.float32))
            responses.append(pb_utils.InferenceResponse([probability]))
        return responses
"""


# The real INT8 ranker plus 30 ms of sleep per batch: what the perf gate must catch.
_SLOWED_RANKER = """
import os
import time

import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], "..", "ranker_int8", "1", "model.onnx")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        time.sleep(0.03)
        responses = []
        for request in requests:
            feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in ("categorical", "dense")}
            (probability,) = self.session.run(["probability"], feeds)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("probability", probability)]))
        return responses
"""


def _write_slowed_ranker(repository: Path) -> None:
    slowed = dataclasses.replace(
        RANKER_FP32, name="slowed_ranker", backend="python", artifact="model.py", parameters={}, warmup_batch_sizes=()
    )
    render.write([slowed], repository)
    (repository / slowed.name / "1").mkdir(parents=True, exist_ok=True)
    (repository / slowed.name / "1" / "model.py").write_text(_SLOWED_RANKER)


def _write_generous_route(repository: Path) -> None:
    """The route with budgets no healthy ranker misses, for tests that compare pages: a
    loaded CI host must not turn them into timing tests."""
    render.write_variant(
        repository,
        RECOMMEND,
        "recommend_generous",
        retrieve_budget_ms="2000",
        rank_budget_ms="2000",
        total_budget_ms="5000",
    )


# A route deployed with a broken feature table (as a bad rollout would leave it): every
# page hits an IndexError inside the route, a server fault the caller must see as one.
CORRUPT_ROUTE = "recommend_corrupt_features"
# A route whose retrieval model was never loaded (as when candidates_ivf fails to load).
MISSING_RETRIEVAL_ROUTE = "recommend_missing_retrieval"
ABSENT_MODEL = "retrieve_not_deployed"


def _write_broken_routes(repository: Path) -> None:
    version_dir = render.write_variant(repository, RECOMMEND, CORRUPT_ROUTE)
    with np.load(version_dir / "features.npz") as tables:
        arrays = {name: tables[name] for name in tables.files}
    arrays["item_available"] = arrays["item_available"][:10]
    np.savez(version_dir / "features.npz", **arrays)
    render.write_variant(repository, RECOMMEND, MISSING_RETRIEVAL_ROUTE, retrieve_model=ABSENT_MODEL)


def _write_misbehaving_routes(repository: Path) -> None:
    for kind in ("slow", "failing"):
        ranker = dataclasses.replace(
            RANKER_FP32,
            name=f"{kind}_ranker",
            backend="python",
            artifact="model.py",
            parameters={},
            warmup_batch_sizes=(),
        )
        render.write([ranker], repository)
        (repository / ranker.name / "1").mkdir(parents=True, exist_ok=True)
        (repository / ranker.name / "1" / "model.py").write_text(_MISBEHAVING_RANKER.format(failing=kind == "failing"))
        render.write_variant(repository, RECOMMEND, f"recommend_{kind}_ranker", ranker_model=ranker.name)


@pytest.fixture(scope="session")
def route_repository(exported_repository) -> Path:
    """The recommend route over a 20k-title catalogue, plus routes wired to bad rankers."""
    from export.recommend.pipeline import export_recommend
    from export.recommend.two_tower import TwoTowerConfig

    render.write(list(RECOMMEND_MODELS), exported_repository)
    export_recommend(exported_repository, config=TwoTowerConfig(n_items=ROUTE_ITEMS, log_rows=150_000, epochs=1))
    _write_misbehaving_routes(exported_repository)
    _write_generous_route(exported_repository)
    _write_broken_routes(exported_repository)
    _write_slowed_ranker(exported_repository)
    return exported_repository


@pytest.fixture(scope="session")
def triton(route_repository, tmp_path_factory):
    exported_repository = route_repository
    _write_strict_lookup(exported_repository)
    log_path = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    server = TritonServer(exported_repository, free_ports(), log_path=log_path).start(timeout=180)
    from marquee.serving import warm_up_recommend

    for route in ("recommend", "recommend_generous"):
        warm_up_recommend(server.grpc_url, model=route)
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
