"""The fuzz generators (perf/fuzz/cases.py) draw a well-typed case for every spec, without a
server: a generator bug must fail here, not halfway through a fuzz run."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, given, settings

from marquee.specs import CATALOGUE
from perf.fuzz.cases import KINDS, WireTensor, requests_for


def draw_cases(spec, kinds: Counter) -> None:
    @settings(max_examples=10, deadline=None, database=None, derandomize=True, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=requests_for(spec))
    def draw(case):
        assert case.model == spec.name and case.kind in KINDS and case.protocol in ("grpc", "http")
        assert all(isinstance(t, WireTensor) and t.name for t in case.tensors)
        kinds[case.kind] += 1

    draw()


def test_every_spec_yields_cases_of_every_kind():
    kinds: Counter = Counter()
    for spec in CATALOGUE.values():
        draw_cases(spec, kinds)
    assert set(kinds) == set(KINDS), kinds
