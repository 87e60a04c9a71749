"""Routes on a real tritonserver label what they do by surface, stage and outcome on Triton's
own /metrics; an unknown surface is refused with the known ones listed."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from clients import RecommendClient
from clients.moderation import ModerationClient
from marquee.errors import InputValidationError
from tests.fixtures_whisper import silence_wav, transcribe

pytestmark = pytest.mark.integration


def scrape(metrics_url: str) -> dict[tuple[str, frozenset], float]:
    """Every series of the text exposition: (name, labels) -> value."""
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    series = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        series[(match.group(1), labels)] = float(match.group(4))
    return series


def value(series: dict, name: str, **labels: str) -> float:
    """Sum of the series of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in series.items() if n == name and wanted <= found)


def test_pages_are_counted_and_timed_by_surface_and_stage(triton):
    before = scrape(triton.metrics_url)
    with RecommendClient(triton.grpc_url, timeout_s=5.0, surface="home") as home:
        for user in range(6):
            home.recommend(user, 2, [10, 11], n=10)
    with RecommendClient(triton.grpc_url, timeout_s=5.0, surface="creator_tools") as creator:
        creator.recommend(99, 1, [], n=5)
    after = scrape(triton.metrics_url)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "recommend"}
    assert grew("marquee_route_requests_total", **route, surface="home") == 6
    assert grew("marquee_route_requests_total", **route, surface="creator_tools") == 1
    assert grew("marquee_route_request_duration_seconds_count", **route, surface="home") == 6
    for stage in ("retrieve", "filter", "rank", "rules"):
        assert grew("marquee_route_stage_duration_seconds_count", **route, surface="home", stage=stage) == 6, stage
    assert grew("marquee_route_compute_seconds_total", **route, surface="home") > 0
    retrieved = grew("marquee_recommend_candidates_total", **route, surface="home", step="retrieved")
    licensed = grew("marquee_recommend_candidates_total", **route, surface="home", step="licensed")
    assert retrieved == 6 * 500 and 0 < licensed < retrieved
    outcomes = {dict(labels)["outcome"] for (name, labels) in after if name == "marquee_route_requests_total"}
    assert outcomes <= {"ok", "degraded", "error", "refused"}  # the four outcomes, nothing else


def test_a_page_without_a_surface_is_attributed_to_the_default(triton):
    before = scrape(triton.metrics_url)
    with RecommendClient(triton.grpc_url, timeout_s=5.0) as client:
        client.recommend(3, 2, [], n=5)
    after = scrape(triton.metrics_url)
    name, labels = "marquee_route_requests_total", {"route": "recommend", "surface": "unattributed"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_unknown_surface_is_invalid_argument_listing_the_known_ones(triton, protocol):
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    with RecommendClient(url, protocol=protocol, timeout_s=5.0, surface="tv_app") as client:
        with pytest.raises(InputValidationError, match=r"surface 'tv_app' is not known; allowed: batch, creator_tools"):
            client.recommend(3, 2, [], n=5)
    series = scrape(triton.metrics_url)
    assert value(series, "marquee_route_requests_total", route="recommend", surface="invalid", reason="input") >= 1


def test_a_surface_that_is_not_a_string_is_refused(triton):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    inputs = []
    for name, array in {
        "user_id": np.array([1], np.int64),
        "region": np.array([2], np.int64),
        "history": np.array([10], np.int64),
        "context": np.array([1, 20], np.int64),
        "n": np.array([5], np.int32),
    }.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "INT32" if array.dtype == np.int32 else "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    with pytest.raises(InferenceServerException, match="parameter `surface`=7; must be a string"):
        client.infer("recommend", inputs, parameters={"surface": 7})


def test_moderation_decisions_are_counted_by_surface_category_and_decision(text_triton):
    before = scrape(text_triton.metrics_url)
    with ModerationClient(text_triton.grpc_url, surface="moderation_backoffice") as client:
        results = client.moderate_text(["what a lovely episode", "you are a pathetic little clown", ""])
    after = scrape(text_triton.metrics_url)
    counted = {
        (dict(labels)["category"], dict(labels)["decision"]): v - before.get((name, labels), 0)
        for (name, labels), v in after.items()
        if name == "marquee_moderation_decisions_total" and dict(labels)["surface"] == "moderation_backoffice"
    }
    assert sum(counted.values()) == 3
    assert counted.get(("input", "error")) == 1  # the empty text, by its error kind
    decisions = [r.decision for r in results]
    for decision in set(decisions):
        assert sum(v for (_, d), v in counted.items() if d == decision) == decisions.count(decision)


def test_transcription_counts_the_audio_seconds_of_a_surface(transcribe_triton, espeak_clips):
    before = scrape(transcribe_triton.metrics_url)
    clip = espeak_clips.get("Counting the seconds of audio.").wav
    with grpcclient.InferenceServerClient(transcribe_triton.grpc_url) as client:
        results = transcribe(client, [clip, silence_wav(2.0)], surface="batch")
    after = scrape(transcribe_triton.metrics_url)
    name, labels = "marquee_transcription_audio_seconds_total", {"route": "transcribe", "surface": "batch"}
    seconds = value(after, name, **labels) - value(before, name, **labels)
    assert seconds == pytest.approx(sum(r["duration_s"] for r in results), abs=0.01)
