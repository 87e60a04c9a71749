"""Session fixtures for the moderation text area (a pytest plugin registered in tests/conftest.py).

- `text_moderation_repository`: the four text models exported once per session (about
  35 s on two cores) into the session cache, with two test-only route variants:
  `moderate_text_full_band` (a policy whose ambiguous band starts at 0, so every text
  below the lexical block line reaches stage 2) and `moderate_text_broken_classifier`
  (its classifier names a model that does not exist).
- `text_triton`: a real tritonserver on that repository, warmed up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from marquee import render
from marquee.specs.moderation_text import MODERATE_TEXT

FULL_BAND_ROUTE = "moderate_text_full_band"
BROKEN_ROUTE = "moderate_text_broken_classifier"
# Deployed with a class list that disagrees with the classifier (a bad rollout): every
# text sent to stage 2 hits a fault inside the route, which the caller must see as INTERNAL.
MISCONFIGURED_ROUTE = "moderate_text_wrong_classes"
FULL_BAND_POLICY_VERSION = "test-full-band"
# The shipped policy sends every text to stage 2; this variant (and the broken one) keep a
# narrow band, so that both sides of it are exercised.
NARROW_BAND_ROUTE = "moderate_text_narrow_band"
NARROW_BAND = (0.10, 0.90)


def _route_variant(repository: Path, name: str, **parameters: str) -> Path:
    return render.write_variant(repository, MODERATE_TEXT, name, **parameters)


def _write_full_band_route(repository: Path) -> None:
    version_dir = _route_variant(repository, FULL_BAND_ROUTE)
    policy_file = version_dir / MODERATE_TEXT.parameters["policy"]
    policy = yaml.safe_load(policy_file.read_text())
    policy["version"] = FULL_BAND_POLICY_VERSION
    policy["text"]["ambiguous_band"] = [0.0, policy["text"]["categories"]["profanity"]["block"]]
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))


def _narrow_band(version_dir: Path) -> None:
    policy_file = version_dir / MODERATE_TEXT.parameters["policy"]
    policy = yaml.safe_load(policy_file.read_text())
    policy["version"] = "test-narrow-band"
    policy["text"]["ambiguous_band"] = list(NARROW_BAND)
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))


@pytest.fixture(scope="session")
def text_moderation_repository(cache_root) -> Path:
    """Exported text moderation models plus the two test route variants."""
    from export.moderation.text_pipeline import export_text_moderation

    repository = cache_root / "moderation_text" / "model_repository"
    export_text_moderation(repository)
    _write_full_band_route(repository)
    _narrow_band(_route_variant(repository, BROKEN_ROUTE, classifier_int8_model="no_such_classifier"))
    _narrow_band(_route_variant(repository, NARROW_BAND_ROUTE))
    _route_variant(repository, MISCONFIGURED_ROUTE, classes="clean,spam")
    return repository


def moderate(client, texts: list[bytes | str], model: str = MODERATE_TEXT.name, **parameters):
    """(decisions, audits) from the route, as str and parsed JSON."""
    import json

    import tritonclient.grpc as grpcclient

    items = np.array([t.encode() if isinstance(t, str) else t for t in texts], dtype=np.object_)
    tensor = grpcclient.InferInput("text", [len(items)], "BYTES")
    tensor.set_data_from_numpy(items)
    result = client.infer(model, [tensor], parameters=parameters or None, client_timeout=60)
    decisions = [d.decode() for d in result.as_numpy("decision")]
    audits = [json.loads(a) for a in result.as_numpy("audit")]
    return decisions, audits


@pytest.fixture(scope="session")
def text_triton(text_moderation_repository, tmp_path_factory):
    import tritonclient.grpc as grpcclient

    from marquee.server import TritonServer, free_ports

    log_path = tmp_path_factory.mktemp("text-triton-log") / "tritonserver.log"
    server = TritonServer(text_moderation_repository, free_ports(), log_path=log_path).start(timeout=180)
    # First calls pay for ONNX Runtime's lazy initialisation; keep that out of the tests.
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        for precision in ("int8", "fp32"):
            moderate(client, ["warm up you silly fool"] * 4, model=FULL_BAND_ROUTE, classifier_precision=precision)
    yield server
    server.stop()


@pytest.fixture
def text_client(text_triton):
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(text_triton.grpc_url) as client:
        yield client
    if not text_triton.alive():
        from marquee.server.process import log_tail

        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(text_triton.log_path)}")
