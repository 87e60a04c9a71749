from pathlib import Path

import pytest
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from marquee import render
from marquee.errors import ConfigDriftError
from marquee.paths import PROJECT_ROOT
from marquee.specs import CATALOGUE, DataType, DynamicBatching, InstanceGroup, ModelSpec, TensorSpec
from marquee.specs.ranker import RANKER_FP32
from marquee.targets import EMBEDDED_CPU

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

# Exercises what the catalogue's specs do not: dynamic dims, preferred batch sizes,
# GPU instances, and an unbatched model (max_batch_size 0, which proto3 would drop).
ENCODER = ModelSpec(
    name="golden_encoder",
    family="golden",
    precision=RANKER_FP32.precision,
    max_batch_size=8,
    inputs=(TensorSpec("input_ids", DataType.INT64, ("sequence",)),),
    outputs=(TensorSpec("embedding", DataType.FP32, (384,)),),
    dynamic_batching=DynamicBatching(max_queue_delay_us=500, preferred_batch_sizes=(4, 8)),
    instance_groups=(InstanceGroup(count=2, kind="KIND_GPU"),),
    tolerance=RANKER_FP32.tolerance,
    budget=RANKER_FP32.budget,
)
UNBATCHED = ModelSpec(
    name="golden_unbatched",
    family="golden",
    precision=RANKER_FP32.precision,
    max_batch_size=0,
    inputs=(TensorSpec("x", DataType.FP32, (2, 3)),),
    outputs=(TensorSpec("y", DataType.FP32, (2,)),),
    dynamic_batching=None,
    tolerance=RANKER_FP32.tolerance,
    budget=RANKER_FP32.budget,
)


@pytest.mark.parametrize("spec", [ENCODER, UNBATCHED, RANKER_FP32], ids=lambda s: s.name)
def test_rendered_config_matches_golden_file(spec):
    # The hand-made specs render as written; the catalogue's ranker as the embedded target serves it.
    target = EMBEDDED_CPU if spec is RANKER_FP32 else None
    assert render.render(spec, target) == (GOLDEN / f"{spec.name}.pbtxt").read_text()


@pytest.mark.parametrize("spec", [ENCODER, UNBATCHED, *CATALOGUE.values()], ids=lambda s: s.name)
def test_rendered_config_parses_back_to_the_spec(spec):
    config = render.parse(render.render(spec))
    assert config.name == spec.name
    assert config.max_batch_size == spec.max_batch_size
    assert [i.name for i in config.input] == [t.name for t in spec.inputs]
    assert [list(i.dims) for i in config.input] == [t.triton_dims for t in spec.inputs]
    assert [model_config_pb2.DataType.Name(o.data_type) for o in config.output] == [
        t.dtype.config_name for t in spec.outputs
    ]


def test_unbatched_config_spells_out_max_batch_size_zero():
    assert "\nmax_batch_size: 0\n" in render.render(UNBATCHED)


def test_unknown_config_field_fails_loudly():
    with pytest.raises(json_format.ParseError, match="max_batch"):
        json_format.ParseDict({"name": "m", "max_batch": 4}, model_config_pb2.ModelConfig())


def test_committed_configs_are_current():
    render.check(list(CATALOGUE.values()), PROJECT_ROOT / "model_repository")


def test_check_fails_on_a_stale_config_and_names_it(tmp_path):
    render.write([RANKER_FP32], tmp_path)
    path = tmp_path / "ranker_fp32" / "config.pbtxt"
    path.write_text(path.read_text().replace("max_batch_size: 1024", "max_batch_size: 512"))
    with pytest.raises(ConfigDriftError, match="ranker_fp32/config.pbtxt"):
        render.check([RANKER_FP32], tmp_path)


def test_check_fails_on_a_missing_config(tmp_path):
    with pytest.raises(ConfigDriftError, match="1 embedded-cpu config"):
        render.check([RANKER_FP32], tmp_path)


def test_rate_limiter_priority_and_queue_policy_render_into_triton_fields():
    import dataclasses

    from marquee.specs import QueuePolicy, RateLimiter

    spec = dataclasses.replace(
        RANKER_FP32,
        instance_groups=(InstanceGroup(2, "KIND_CPU", RateLimiter((("batch_slots", 1),), priority=4)),),
        dynamic_batching=DynamicBatching(
            1000,
            (),
            priority_levels=2,
            default_priority_level=2,
            default_queue_policy=QueuePolicy(500_000, "DELAY", True, 64),
        ),
    )
    config = render.parse(render.render(spec))
    limiter = config.instance_group[0].rate_limiter
    assert [(r.name, r.count) for r in limiter.resources] == [("batch_slots", 1)]
    assert limiter.priority == 4
    batching = config.dynamic_batching
    assert (batching.priority_levels, batching.default_priority_level) == (2, 2)
    policy = batching.default_queue_policy
    assert policy.timeout_action == model_config_pb2.ModelQueuePolicy.DELAY
    assert (policy.default_timeout_microseconds, policy.max_queue_size) == (500_000, 64)
    assert policy.allow_timeout_override


def test_default_priority_outside_the_levels_is_refused():
    with pytest.raises(ValueError, match="default_priority_level=3; must be in \\[1, priority_levels=2\\]"):
        DynamicBatching(priority_levels=2, default_priority_level=3)
