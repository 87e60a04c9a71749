"""Session fixtures for the moderation image area (a pytest plugin registered in tests/conftest.py).

`image_moderation_repository`: a tmp model repository with the image route exported, plus
- `moderate_text_standin`: a stand-in for the text route with the contract's tensors,
  which blocks text mentioning "crypto" (so tests can see OCR text routed and judged
  without training the real text models);
- `moderate_image_judged`: the route wired to that stand-in;
- `moderate_image_no_ocr`: the route with OCR turned off. `moderate_image` itself
  points at `moderate_text`, which is absent here: that exercises the "text found but
  not judged -> review" path.
`image_triton`: a real tritonserver on that repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marquee import render
from marquee.server.process import log_tail
from marquee.specs import DataType, LatencyBudget, ModelSpec, Precision, TensorSpec, Tolerance
from marquee.specs.moderation_image import IMAGE_MODERATION_MODELS, MODERATE_IMAGE, route_variant
from marquee.specs.moderation_text import MODERATE_TEXT

TEXT_STANDIN = ModelSpec(
    name="moderate_text_standin",
    family="test",
    precision=Precision.FP32,
    backend="python",
    artifact="model.py",
    inputs=(TensorSpec("text", DataType.BYTES, ("items",)),),
    outputs=(TensorSpec("decision", DataType.BYTES, ("items",)), TensorSpec("audit", DataType.BYTES, ("items",))),
    max_batch_size=0,
    dynamic_batching=None,
    tolerance=Tolerance(atol=0.0),
    budget=LatencyBudget(perf_latency_p99_us=10_000),
)

_TEXT_STANDIN_CODE = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            texts = [t.decode("utf-8") for t in pb_utils.get_input_tensor_by_name(request, "text").as_numpy()]
            if len(texts) > {max_texts}:  # the real text route's request limit
                responses.append(pb_utils.InferenceResponse([], error=pb_utils.TritonError(
                    f"{len(texts)} texts; allowed: at most {max_texts}", pb_utils.TritonError.INVALID_ARG)))
                continue
            decisions, audits = [], []
            for text in texts:
                spam = 0.97 if "crypto" in text.lower() else 0.01
                decision = "block" if spam >= 0.9 else "allow"
                decisions.append(decision)
                audits.append(json.dumps({"decision": decision, "scores": {"spam": spam},
                                          "reasons": [f"spam={spam}>=block 0.9"] if decision == "block" else [],
                                          "stages": [{"model": "standin"}]}))
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("decision", np.array([d.encode() for d in decisions], dtype=object)),
                pb_utils.Tensor("audit", np.array([a.encode() for a in audits], dtype=object)),
            ]))
        return responses
"""

JUDGED_ROUTE = route_variant("moderate_image_judged", text_route=TEXT_STANDIN.name)
NO_OCR_ROUTE = route_variant("moderate_image_no_ocr", ocr_enabled="false")


@pytest.fixture(scope="session")
def image_moderation_repository(tmp_path_factory, cache_root) -> Path:
    repository = tmp_path_factory.mktemp("image_moderation_repository")
    install_image_moderation(repository)
    render.write_variant(repository, MODERATE_IMAGE, NO_OCR_ROUTE.name, **NO_OCR_ROUTE.parameters)
    return repository


def install_image_moderation(repository: Path) -> None:
    """The image route exported, the text stand-in, and the route judged by it."""
    from export.moderation_image import export_image_moderation

    render.write([*IMAGE_MODERATION_MODELS, TEXT_STANDIN], repository)
    export_image_moderation(repository)
    (repository / TEXT_STANDIN.name / "1").mkdir(parents=True)
    standin = _TEXT_STANDIN_CODE.replace("{max_texts}", MODERATE_TEXT.parameters["max_texts"])
    (repository / TEXT_STANDIN.name / "1" / "model.py").write_text(standin)
    render.write_variant(repository, MODERATE_IMAGE, JUDGED_ROUTE.name, **JUDGED_ROUTE.parameters)


@pytest.fixture(scope="session")
def image_triton(image_moderation_repository, tmp_path_factory):
    from marquee.server import TritonServer, free_ports

    log_path = tmp_path_factory.mktemp("image-triton-log") / "tritonserver.log"
    server = TritonServer(image_moderation_repository, free_ports(), log_path=log_path).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture
def image_server_alive(image_triton):
    """Use in a test to fail at once, with the server's log, if the test left the server dead."""
    yield image_triton
    if not image_triton.alive():
        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(image_triton.log_path)}")
