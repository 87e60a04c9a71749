"""`marquee moderation train`: a head retrained on a platform's labels is exported as
classifier version 2 next to version 1, loaded on a running server, shadowed, promoted
and rolled back through the policy versions; the served scores are the new graph's."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from export.moderation.natural_set import load_natural_set
from marquee.moderation.labels import write_labels
from marquee.specs.moderation_text import TEXT_CLASSES, TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8
from tests.fixtures_moderation_text import moderate

pytestmark = pytest.mark.integration
ROUTE = "moderate_text"
MODELS = [ROUTE, "profanity_lexical", TEXT_CLASSIFIER_INT8.name, TEXT_CLASSIFIER_FP32.name]
RELOAD_S = 0.6
TEXTS = ["the opening shot of the finale is stunning", "nobody asked you, clown", "I know where you live"]


def _linked_copy(source, target) -> None:
    """The exported models, linked file by file: version folders added here stay here."""
    for model in MODELS:
        shutil.copytree(source / model, target / model, copy_function=os.symlink)


@pytest.fixture(scope="module")
def explicit_server(text_moderation_repository, tmp_path_factory):
    from marquee.server import TritonServer, free_ports

    repository = tmp_path_factory.mktemp("train-repository")
    _linked_copy(text_moderation_repository, repository)
    server = TritonServer(repository, free_ports(), models=MODELS).start(timeout=180)
    yield server
    server.stop()


def _moderate(server, texts):
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        return moderate(client, texts)


def _classifier_version(audit: dict) -> int:
    return next(s["version"] for s in audit["stages"] if s["model"].startswith("text_classifier"))


def _assert_same_encoder_new_head(model_dir) -> None:
    """Version 2 keeps version 1's (fine-tuned) encoder bit for bit; only the head is new."""
    from safetensors.numpy import load_file

    from export.moderation.text_classifier import CLASSIFIER_FILE

    old, new = (load_file(str(model_dir / v / CLASSIFIER_FILE)) for v in ("1", "2"))
    assert old.keys() == new.keys()
    encoder = [k for k in old if k.startswith("encoder.")]
    assert len(encoder) > 90 and all(np.array_equal(old[k], new[k]) for k in encoder)
    assert not np.allclose(old["head.weight"], new["head.weight"], atol=1e-3)


def test_a_retrained_head_is_exported_as_a_new_version_and_served(explicit_server, tmp_path):
    from typer.testing import CliRunner

    from export.moderation.text_classifier import onnx_probabilities
    from marquee.cli import app

    repository = explicit_server.repository
    comments = load_natural_set(split="dev")
    labels = write_labels(tmp_path / "labels.tsv", [(c.label, c.text) for c in comments[::2]])
    result = CliRunner().invoke(
        app,
        [
            "moderation",
            "train",
            str(labels),
            "--no-generated",
            "--shadow",
            "--repository",
            str(repository),
            "--http-url",
            explicit_server.http_url,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "classifier v2 exported" in result.output and "shadow policy" in result.output
    for spec in (TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8):
        assert (repository / spec.name / "2" / "model.onnx").is_file()
        assert (repository / spec.name / "1" / "model.onnx").is_file()  # the one in service stays
    _assert_same_encoder_new_head(repository / TEXT_CLASSIFIER_FP32.name)

    # In shadow: version 1 decides, version 2 scores the same texts in the audit only.
    time.sleep(RELOAD_S)
    decisions, audits = _moderate(explicit_server, TEXTS)
    new_graph = onnx_probabilities(repository / TEXT_CLASSIFIER_INT8.name / "2" / "model.onnx", TEXTS)
    old_graph = onnx_probabilities(repository / TEXT_CLASSIFIER_INT8.name / "1" / "model.onnx", TEXTS)
    for audit, new_row, old_row in zip(audits, new_graph, old_graph, strict=True):
        assert _classifier_version(audit) == 1
        assert audit["shadow"]["classifier_version"] == 2 and audit["shadow"]["enforced"] is False
        shadow_scores = [audit["shadow"]["scores"][c] for c in TEXT_CLASSES if c != "clean"]
        served_scores = [audit["scores"][c] for c in TEXT_CLASSES if c != "clean"]
        np.testing.assert_allclose(shadow_scores, new_row[1:], atol=1e-4)
        np.testing.assert_allclose(served_scores, old_row[1:], atol=1e-4)
    assert not np.allclose(new_graph, old_graph, atol=1e-3)  # a different head

    # Promote: version 2 decides; rollback: version 1 again. No reload, no restart.
    runner = CliRunner()
    promoted = runner.invoke(app, ["moderation", "policy", "promote", "--repository", str(repository)])
    assert promoted.exit_code == 0, promoted.output
    time.sleep(RELOAD_S)
    _, audits = _moderate(explicit_server, TEXTS)
    assert {_classifier_version(a) for a in audits} == {2}
    assert all(a["policy_version"].endswith("+classifier-v2") for a in audits)
    np.testing.assert_allclose(
        [[a["scores"][c] for c in TEXT_CLASSES if c != "clean"] for a in audits], new_graph[:, 1:], atol=1e-4
    )
    rolled_back = runner.invoke(app, ["moderation", "policy", "rollback", "--repository", str(repository)])
    assert rolled_back.exit_code == 0, rolled_back.output
    time.sleep(RELOAD_S)
    _, audits = _moderate(explicit_server, TEXTS)
    assert {_classifier_version(a) for a in audits} == {1}
    history = (repository / ROUTE / "1" / "policy.history.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in history] == ["shadow", "promote", "rollback"]
