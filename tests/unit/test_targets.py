"""Deployment targets: one spec, three repositories, and a structural check that can fail."""

from __future__ import annotations

import dataclasses

import pytest

from marquee import render
from marquee.repository_check import KIND_NAMES, check_repository
from marquee.specs import CATALOGUE
from marquee.targets import EMBEDDED_CPU, NGC_CPU, NGC_GPU, TARGETS

SPECS = list(CATALOGUE.values())


def kinds(config) -> list[str]:
    return [KIND_NAMES(group.kind) for group in config.instance_group]


def _config(spec_name: str, target):
    return render.parse(render.render(CATALOGUE[spec_name], target))


@pytest.mark.parametrize("target", list(TARGETS.values()), ids=lambda t: t.name)
def test_every_committed_repository_is_current_and_structurally_clean(target):
    render.check(SPECS, target.repository, target)
    assert check_repository(SPECS, target.repository, target) == []


def test_gpu_target_puts_onnx_and_dali_on_the_gpu_with_tensorrt():
    ranker = _config("ranker_fp32", NGC_GPU)
    assert kinds(ranker) == ["KIND_GPU"]
    (accelerator,) = ranker.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    assert "intra_op_thread_count" not in ranker.parameters
    assert {w.batch_size for w in ranker.model_warmup} == {1, CATALOGUE["ranker_fp32"].max_batch_size}
    dali = _config("image_preprocess", NGC_GPU)
    assert dali.default_model_filename == "model.dali" and kinds(dali) == ["KIND_GPU"]


def test_int8_ranker_on_gpu_loads_its_qdq_twin_at_tensorrt_int8():
    config = _config("ranker_int8", NGC_GPU)
    assert config.default_model_filename == "model.qdq.onnx"
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.parameters["precision_mode"] == "INT8"
    assert _config("ranker_int8", EMBEDDED_CPU).default_model_filename == "model.onnx"


def test_python_routes_stay_on_the_cpu_and_gpu_retrieval_is_exact():
    recommend = _config("recommend", NGC_GPU)
    assert set(kinds(recommend)) == {"KIND_CPU"}
    assert recommend.parameters["retrieve_model"].string_value == "retrieve"
    assert _config("recommend", EMBEDDED_CPU).parameters["retrieve_model"].string_value == "retrieve_ivf"


def test_cpu_targets_supply_thread_defaults_and_the_ngc_cpu_dali_file():
    for target in (EMBEDDED_CPU, NGC_CPU):
        config = _config("user_tower", target)
        assert config.parameters["intra_op_thread_count"].string_value == "1"
        assert kinds(config) == ["KIND_CPU"]
        assert not config.optimization.execution_accelerators.gpu_execution_accelerator
    # The whisper encoder's own 2 threads win over the target default.
    assert _config("whisper_encoder_fp32", NGC_CPU).parameters["intra_op_thread_count"].string_value == "2"
    assert _config("image_preprocess", NGC_CPU).default_model_filename == "model.cpu.dali"
    assert _config("image_preprocess", EMBEDDED_CPU).default_model_filename == "model.dali"


def _broken(tmp_path, edit):
    render.write(SPECS, tmp_path, NGC_GPU)
    path = tmp_path / edit[0] / "config.pbtxt"
    path.write_text(path.read_text().replace(edit[1], edit[2]))
    return check_repository(SPECS, tmp_path, NGC_GPU)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("retrieve", 'model_name: "user_tower"', 'model_name: "no_tower"'), "no such model in the repository"),
        (
            ("retrieve", 'value: "user_embedding"\n    }\n  }\n  step', 'value: "user_vector"\n    }\n  }\n  step'),
            "neither an ensemble input",
        ),
        (
            ("ranker_fp32", 'default_model_filename: "model.onnx"', 'default_model_filename: "model.py"'),
            "expected a .onnx file",
        ),
        (("recommend", "kind: KIND_CPU", "kind: KIND_GPU"), "a Python model on KIND_GPU"),
        (("user_tower", "dims: 32", "dims: 0"), "sizes are positive"),
        (("retrieve", 'platform: "ensemble"', 'platform: "ensemble"\nbackend: "python"'), "an ensemble has no backend"),
        (("ranker_fp32", "\n  batch_size: 1024", "\n  batch_size: 4096"), "outside 1..1024"),
    ],
)
def test_structural_check_catches_what_triton_would_refuse(tmp_path, edit, problem):
    problems = _broken(tmp_path, edit)
    assert any(problem in line and line.startswith(edit[0]) for line in problems), problems


def test_structural_check_finds_a_missing_backend_file_in_an_exported_version(tmp_path):
    render.write(SPECS, tmp_path, EMBEDDED_CPU)
    (tmp_path / "ranker_fp32" / "1").mkdir(parents=True)
    (tmp_path / "ranker_fp32" / "1" / "marquee-export.json").write_text("{}")
    problems = check_repository(SPECS, tmp_path, EMBEDDED_CPU)
    assert problems == ["ranker_fp32: version 1 lacks model.onnx (the backend loads it)"]


def test_gpu_configs_on_a_cpu_target_are_refused(tmp_path):
    render.write(SPECS, tmp_path, NGC_GPU)
    problems = check_repository(SPECS, tmp_path, NGC_CPU)
    assert any("KIND_GPU instances on target ngc-cpu" in p for p in problems)
    assert any("GPU execution accelerator on target ngc-cpu" in p for p in problems)


def test_a_target_cannot_override_a_parameter_the_route_lacks():
    target = dataclasses.replace(NGC_GPU, route_parameters={"recommend": {"no_such": "x"}})
    with pytest.raises(ValueError, match="no parameters"):
        target.deploy(CATALOGUE["recommend"])
