"""`marquee top` without a server: the text-format parser, the window math (rates,
histogram quantiles as Prometheus computes them, degraded % and errors) on two
hand-written scrapes with known numbers, the rendered tables, and the command against a
local HTTP server that answers those scrapes (and answers wrongly, for the errors)."""

from __future__ import annotations

import http.server
import math
import re
import threading
from contextlib import contextmanager

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from marquee.top import rates, view
from marquee.top.cli import top_command
from marquee.top.scrape import ExpositionError, Sample, TopError, fetch, parse
from marquee.top.snapshot import Scraper, snapshot_of

# Triton's /metrics as the embedded server writes it, cut down: Triton's own series, a
# route's counters and its latency histogram, the composed models' readiness. Taken at
# t=100 s; AFTER at t=102 s. recommend/home, over the window: 100 requests (86 ok, 10
# degraded by `rank`, 3 internal errors, 1 input error); 5 of them took (5, 10] ms, 90
# took (10, 25] ms and 5 took (25, 50] ms; 3.5 compute-seconds.
BEFORE = r"""# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="recommend",version="1"} 402
nv_inference_request_success{model="ranker_int8",version="1"} 1200
# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)\nnone on this host
# TYPE nv_gpu_utilization gauge
# HELP marquee_route_requests_total route requests by surface and outcome (ok, degraded, error) with its reason
# TYPE marquee_route_requests_total counter
marquee_route_requests_total{outcome="ok",reason="",route="recommend",surface="home"} 400
marquee_route_requests_total{outcome="degraded",reason="rank",route="recommend",surface="home"} 10
marquee_route_requests_total{outcome="error",reason="internal",route="recommend",surface="home"} 2
marquee_route_requests_total{outcome="ok",reason="",route="recommend",surface="creator_tools"} 5
# HELP marquee_route_request_duration_seconds time from a route request's arrival to its response, by surface
# TYPE marquee_route_request_duration_seconds histogram
marquee_route_request_duration_seconds_count{route="recommend",surface="home"} 412
marquee_route_request_duration_seconds_sum{route="recommend",surface="home"} 7.5
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.001"} 0
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.0025"} 0
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.005"} 10
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.01"} 40
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.025"} 380
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.05"} 400
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.1"} 410
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="120"} 412
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="+Inf"} 412
marquee_route_request_duration_seconds_count{route="recommend",surface="creator_tools"} 5
marquee_route_request_duration_seconds_sum{route="recommend",surface="creator_tools"} 0.05
marquee_route_request_duration_seconds_bucket{route="recommend",surface="creator_tools",le="0.01"} 5
marquee_route_request_duration_seconds_bucket{route="recommend",surface="creator_tools",le="+Inf"} 5
# HELP marquee_route_compute_seconds_total route instance busy seconds by surface: the basis for cost attribution
# TYPE marquee_route_compute_seconds_total counter
marquee_route_compute_seconds_total{route="recommend",surface="home"} 10
marquee_route_compute_seconds_total{route="recommend",surface="creator_tools"} 0.05
# HELP marquee_route_dependency_ready 1 if a model that a route composes is loaded and ready, else 0
# TYPE marquee_route_dependency_ready gauge
marquee_route_dependency_ready{model="retrieve",route="recommend"} 1
marquee_route_dependency_ready{model="ranker_int8",route="recommend"} 1
marquee_route_dependency_ready{model="retrieve_not_deployed",route="recommend_missing_retrieval"} 0
marquee_route_dependency_ready{model="ranker_int8",route="recommend_missing_retrieval"} 1
# HELP marquee_moderation_decisions_total moderation decisions by surface, category and decision
# TYPE marquee_moderation_decisions_total counter
marquee_moderation_decisions_total{category="a \"q\" \\ b\nc",decision="block",route="moderate_text",surface="home"} 3
"""

# recommend/search is new in this scrape: 20 requests, all in (5, 10] ms.
AFTER = r"""# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="recommend",version="1"} 498
nv_inference_request_success{model="ranker_int8",version="1"} 1500
# TYPE marquee_route_requests_total counter
marquee_route_requests_total{outcome="ok",reason="",route="recommend",surface="home"} 486
marquee_route_requests_total{outcome="degraded",reason="rank",route="recommend",surface="home"} 20
marquee_route_requests_total{outcome="error",reason="internal",route="recommend",surface="home"} 5
marquee_route_requests_total{outcome="error",reason="input",route="recommend",surface="home"} 1
marquee_route_requests_total{outcome="ok",reason="",route="recommend",surface="creator_tools"} 5
marquee_route_requests_total{outcome="refused",reason="quota",route="recommend",surface="creator_tools"} 8
marquee_route_requests_total{outcome="ok",reason="",route="recommend",surface="search"} 20
# TYPE marquee_route_request_duration_seconds histogram
marquee_route_request_duration_seconds_count{route="recommend",surface="home"} 512
marquee_route_request_duration_seconds_sum{route="recommend",surface="home"} 9.5
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.001"} 0
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.0025"} 0
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.005"} 10
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.01"} 45
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.025"} 475
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.05"} 500
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="0.1"} 510
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="120"} 512
marquee_route_request_duration_seconds_bucket{route="recommend",surface="home",le="+Inf"} 512
marquee_route_request_duration_seconds_count{route="recommend",surface="creator_tools"} 5
marquee_route_request_duration_seconds_sum{route="recommend",surface="creator_tools"} 0.05
marquee_route_request_duration_seconds_bucket{route="recommend",surface="creator_tools",le="0.01"} 5
marquee_route_request_duration_seconds_bucket{route="recommend",surface="creator_tools",le="+Inf"} 5
marquee_route_request_duration_seconds_count{route="recommend",surface="search"} 20
marquee_route_request_duration_seconds_sum{route="recommend",surface="search"} 0.15
marquee_route_request_duration_seconds_bucket{route="recommend",surface="search",le="0.005"} 0
marquee_route_request_duration_seconds_bucket{route="recommend",surface="search",le="0.01"} 20
marquee_route_request_duration_seconds_bucket{route="recommend",surface="search",le="+Inf"} 20
# TYPE marquee_route_compute_seconds_total counter
marquee_route_compute_seconds_total{route="recommend",surface="home"} 13.5
marquee_route_compute_seconds_total{route="recommend",surface="creator_tools"} 0.05
marquee_route_compute_seconds_total{route="recommend",surface="search"} 0.2
# TYPE marquee_route_dependency_ready gauge
marquee_route_dependency_ready{model="retrieve",route="recommend"} 1
marquee_route_dependency_ready{model="ranker_int8",route="recommend"} 1
marquee_route_dependency_ready{model="retrieve_not_deployed",route="recommend_missing_retrieval"} 0
marquee_route_dependency_ready{model="ranker_int8",route="recommend_missing_retrieval"} 1
"""

# The moderation queue's endpoint (prometheus_client's output), 2 s apart: 13 decisions.
QUEUE_BEFORE = """# HELP marquee_moderation_queue_decisions_total Moderation decisions recorded, by decision
# TYPE marquee_moderation_queue_decisions_total counter
marquee_moderation_queue_decisions_total{decision="allow"} 100.0
marquee_moderation_queue_decisions_total{decision="review"} 10.0
marquee_moderation_queue_decisions_total{decision="block"} 5.0
# HELP marquee_moderation_queue_store_up 1 if this scrape read the moderation queue's store, else 0
# TYPE marquee_moderation_queue_store_up gauge
marquee_moderation_queue_store_up{backend="sqlite"} 1.0
"""
QUEUE_AFTER = """
# HELP marquee_moderation_queue_depth Moderation items pending (waiting for a worker, retry backoffs included)
# TYPE marquee_moderation_queue_depth gauge
marquee_moderation_queue_depth 7.0
# TYPE marquee_moderation_queue_oldest_pending_age_seconds gauge
marquee_moderation_queue_oldest_pending_age_seconds 125.5
# TYPE marquee_moderation_queue_leases_in_flight gauge
marquee_moderation_queue_leases_in_flight 2.0
# TYPE marquee_moderation_queue_quarantined_items gauge
marquee_moderation_queue_quarantined_items{error_kind="input"} 1.0
marquee_moderation_queue_quarantined_items{error_kind="model"} 3.0
marquee_moderation_queue_quarantined_items{error_kind="server"} 0.0
# TYPE marquee_moderation_queue_decisions_total counter
marquee_moderation_queue_decisions_total{decision="allow"} 110.0
marquee_moderation_queue_decisions_total{decision="review"} 12.0
marquee_moderation_queue_decisions_total{decision="block"} 6.0
# TYPE marquee_moderation_queue_review_backlog gauge
marquee_moderation_queue_review_backlog 12.0
# TYPE marquee_moderation_queue_store_up gauge
marquee_moderation_queue_store_up{backend="sqlite"} 1.0
"""


def window() -> rates.Window:
    return rates.Window(parse(BEFORE, scraped_at=100.0), parse(AFTER, scraped_at=102.0))


def snapshot():
    before = (parse(BEFORE, 100.0), parse(QUEUE_BEFORE, 100.0))
    after = (parse(AFTER, 102.0), parse(QUEUE_AFTER, 102.0))
    result = snapshot_of("http://triton:8002/metrics", "http://127.0.0.1:9108/metrics", before, after)
    return type(result)(**{**result.__dict__, "taken_at": 0.0})


# -- parsing ----------------------------------------------------------------------------


def test_parse_reads_types_helps_labels_and_values():
    exposition = parse(BEFORE, scraped_at=100.0)
    assert exposition.scraped_at == 100.0
    assert exposition.types["marquee_route_request_duration_seconds"] == "histogram"
    assert exposition.types["nv_gpu_utilization"] == "gauge"
    assert not exposition.has("nv_gpu_utilization")  # declared, no samples
    assert exposition.helps["nv_gpu_utilization"] == "GPU utilization rate [0.0 - 1.0)\nnone on this host"
    assert exposition.series("nv_inference_request_success", model="ranker_int8") == [
        Sample("nv_inference_request_success", (("model", "ranker_int8"), ("version", "1")), 1200.0)
    ]
    assert exposition.value("marquee_route_requests_total", route="recommend", surface="home") == 412
    assert exposition.value("marquee_route_requests_total", outcome="ok") == 405
    inf = exposition.series("marquee_route_request_duration_seconds_bucket", surface="home", le="+Inf")
    assert [s.value for s in inf] == [412]
    assert exposition.series("marquee_route_requests_total", reason="")[0].label("outcome") == "ok"


def test_parse_unescapes_label_values():
    (decision,) = parse(BEFORE).series("marquee_moderation_decisions_total")
    assert decision.label("category") == 'a "q" \\ b\nc'
    assert decision.label("decision") == "block"
    assert decision.value == 3


def test_parse_takes_what_the_format_allows():
    exposition = parse(
        'plain 1.5e3\nwith_time{a="x"} -2 1700000000000\nspaced { a = "1" , b="2", } NaN\n'
        "inf_up +Inf\ninf_down -Inf\n# just a comment\n\n"
    )
    by_name = {s.name: s for s in exposition.samples}
    assert by_name["plain"].value == 1500.0 and by_name["plain"].labels == ()
    assert by_name["with_time"].timestamp_ms == 1_700_000_000_000 and by_name["with_time"].value == -2
    assert by_name["spaced"].labels == (("a", "1"), ("b", "2")) and math.isnan(by_name["spaced"].value)
    assert by_name["inf_up"].value == math.inf and by_name["inf_down"].value == -math.inf


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<html><body>Not Found</body></html>", r"line 1: expected a metric name"),
        ('ok 1\nbroken{a="x} 1', r"line 2: unterminated label value"),
        ('bad{a="\\t"} 1', r"bad escape \\t"),
        ("name one", r"bad value 'one'"),
        ('twice{a="1",a="2"} 1', r"label 'a' given twice"),
        ("# TYPE thing countr", r"unknown metric type 'countr'"),
        ("no_value", r"expected a value"),
    ],
)
def test_parse_names_the_line_it_cannot_read(text, message):
    with pytest.raises(ExpositionError, match=message):
        parse(text)


# -- window math ----------------------------------------------------------------------


def test_counter_increase_and_rate_over_the_window():
    w = window()
    assert w.seconds == 2.0
    assert w.increase("marquee_route_requests_total", route="recommend", surface="home") == 100
    assert w.rate("marquee_route_requests_total", surface="home", outcome="error") == 2.0
    # A series new in the second scrape counts from 0.
    assert w.increase("marquee_route_requests_total", surface="search") == 20
    assert w.rate("nv_inference_request_success", model="ranker_int8") == 150.0


def test_a_counter_that_went_down_counts_from_zero_as_prometheus_does():
    w = rates.Window(parse("c_total 500\n", 0.0), parse("c_total 30\n", 1.0))
    assert w.increase("c_total") == 30


def test_bucket_increases_are_cumulative_per_bound():
    buckets = window().bucket_increases(rates.DURATION, route="recommend", surface="home")
    assert buckets == [
        (0.001, 0),
        (0.0025, 0),
        (0.005, 0),
        (0.01, 5),
        (0.025, 95),
        (0.05, 100),
        (0.1, 100),
        (120.0, 100),
        (math.inf, 100),
    ]


def test_quantiles_interpolate_inside_the_bucket():
    w = window()
    # p50: rank 50 of 100 falls in (0.01, 0.025], which holds observations 6..95:
    # 0.01 + (0.025 - 0.01) * (50 - 5) / 90 = 0.0175.
    assert w.quantile(0.5, rates.DURATION, surface="home") == pytest.approx(0.0175, rel=1e-12)
    # p99: rank 99 falls in (0.025, 0.05], which holds 96..100: 0.025 + 0.025 * 4 / 5 = 0.045.
    assert w.quantile(0.99, rates.DURATION, surface="home") == pytest.approx(0.045, rel=1e-12)
    # All 20 in (0.005, 0.01]: p50 = 0.005 + 0.005 * 10 / 20, p99 = 0.005 + 0.005 * 19.8 / 20.
    assert w.quantile(0.5, rates.DURATION, surface="search") == pytest.approx(0.0075, rel=1e-12)
    assert w.quantile(0.99, rates.DURATION, surface="search") == pytest.approx(0.00995, rel=1e-12)
    # No observations during the window: no quantile.
    assert w.quantile(0.5, rates.DURATION, surface="creator_tools") is None


def test_histogram_quantile_edges_follow_prometheus():
    inf = math.inf
    # A rank in the +Inf bucket: the highest finite bound.
    assert rates.histogram_quantile(0.99, [(0.1, 50), (1.0, 90), (inf, 100)]) == 1.0
    # The first bucket interpolates from 0.
    assert rates.histogram_quantile(0.5, [(0.2, 10), (inf, 10)]) == pytest.approx(0.1)
    # No +Inf bucket, a single bucket, or nothing observed: NaN in Prometheus, None here.
    assert rates.histogram_quantile(0.5, [(0.1, 5), (1.0, 10)]) is None
    assert rates.histogram_quantile(0.5, [(inf, 10)]) is None
    assert rates.histogram_quantile(0.5, [(0.1, 0), (inf, 0)]) is None
    # Unsorted input is sorted; a count that dips is raised to the running maximum.
    assert rates.histogram_quantile(0.5, [(inf, 10), (0.1, 6), (0.2, 4)]) == pytest.approx(0.1 * 5 / 6)
    with pytest.raises(ValueError):
        rates.histogram_quantile(1.5, [(0.1, 1), (inf, 1)])


def test_route_rows_give_rate_latency_degraded_errors_compute_and_missing_models():
    rows = {(r.route, r.surface): r for r in rates.route_rows(window())}
    assert list(rows) == [
        ("recommend", "creator_tools"),
        ("recommend", "home"),
        ("recommend", "search"),
        ("recommend_missing_retrieval", ""),
    ]
    home = rows["recommend", "home"]
    assert home.requests_per_s == 50.0
    assert home.p50_s == pytest.approx(0.0175, rel=1e-12)
    assert home.p99_s == pytest.approx(0.045, rel=1e-12)
    assert home.degraded_pct == 10.0
    assert home.degraded_by_reason == {"rank": 5.0}
    assert home.errors_per_s == 2.0
    assert home.errors_by_kind == {"input": 0.5, "internal": 1.5}
    assert home.compute_per_s == 1.75
    assert home.not_loaded == ()
    refused = rows["recommend", "creator_tools"]  # every request of the window over its quota
    assert (refused.requests_per_s, refused.refused_per_s, refused.p99_s) == (4.0, 4.0, None)
    assert (refused.degraded_pct, refused.errors_per_s) == (0.0, 0.0)
    assert rows["recommend", "search"].requests_per_s == 10.0 and rows["recommend", "search"].degraded_pct == 0.0
    missing = rows["recommend_missing_retrieval", ""]
    assert missing.not_loaded == ("retrieve_not_deployed",) and missing.requests_per_s == 0


def test_a_route_that_has_served_nothing_says_so_next_to_its_models():
    idle = 'marquee_route_dependency_ready{model="retrieve",route="fresh"} 0\n'
    (row,) = rates.route_rows(rates.Window(parse(idle, 0.0), parse(idle, 2.0)))
    assert (row.route, row.surface, row.not_loaded, row.served) == ("fresh", "", ("retrieve",), False)
    snap = snapshot_of("u", None, (parse(idle, 0.0), None), (parse(idle, 2.0), None))
    assert cells(line_with(rendered(view.render(snap)), "fresh"))[-1] == "retrieve (no request yet)"


def test_queue_row_reads_gauges_and_the_decision_rate():
    row = rates.queue_row(rates.Window(parse(QUEUE_BEFORE, 100.0), parse(QUEUE_AFTER, 102.0)))
    assert row.store_up and row.backend == "sqlite"
    assert (row.depth, row.oldest_pending_age_s, row.leases_in_flight, row.review_backlog) == (7, 125.5, 2, 12)
    assert row.quarantined == {"input": 1.0, "model": 3.0} and row.quarantined_total == 4
    assert row.decisions_per_s == 6.5


def test_queue_row_when_the_store_is_down():
    down = parse('marquee_moderation_queue_store_up{backend="redis"} 0\n', 1.0)
    row = rates.queue_row(rates.Window(down, parse('marquee_moderation_queue_store_up{backend="redis"} 0\n', 2.0)))
    assert not row.store_up and row.backend == "redis" and row.depth is None and row.quarantined_total is None


def test_check_marquee_names_the_missing_series():
    rates.check_marquee(parse(AFTER), "u")
    with pytest.raises(TopError, match=r"missing marquee_route_dependency_ready or marquee_route_requests_total"):
        rates.check_marquee(parse('nv_inference_request_success{model="m",version="1"} 3\n'), "u")
    with pytest.raises(TopError, match=r"missing nv_inference_request_success .*; .*pass it as --queue-metrics"):
        rates.check_marquee(parse(QUEUE_AFTER), "http://q/metrics")
    with pytest.raises(TopError, match=r"missing marquee_moderation_queue_store_up .*pass it as --metrics-url"):
        rates.check_queue(parse(AFTER), "u")
    # A route loaded but not called yet: its families are declared, readiness is there.
    rates.check_marquee(
        parse(
            "# TYPE nv_inference_request_success counter\n"
            'marquee_route_dependency_ready{model="retrieve",route="recommend"} 1\n'
        ),
        "u",
    )


# -- the view ---------------------------------------------------------------------------


def rendered(renderable, width: int = 180) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def line_with(text: str, *words: str) -> str:
    lines = [line for line in text.splitlines() if all(word in line for word in words)]
    assert len(lines) == 1, (words, text)
    return lines[0]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split("[│┃]", line.strip().strip("│┃"))]


def test_rendered_routes_table():
    text = rendered(view.render(snapshot()))
    assert "marquee top · http://triton:8002/metrics · 2.0 s window" in text
    header = cells(line_with(text, "route", "surface", "p99"))
    assert header == [
        "route",
        "surface",
        "req/s",
        "p50",
        "p99",
        "degraded",
        "errors/s",
        "refused/s",
        "compute s/s",
        "not loaded",
    ]
    assert cells(line_with(text, "home")) == [
        "",  # the route is named once, on its first row
        "home",
        "50.0",
        "17.5 ms",
        "45.0 ms",
        "10.0% (rank)",
        "2.00 (internal 1.50, input 0.50)",
        "0",
        "1.75",
        "",
    ]
    # Refused over its quota: counted as requests, not as errors, and not in the latencies.
    assert cells(line_with(text, "creator_tools")) == [
        "recommend",
        "creator_tools",
        "4.00",
        "—",
        "—",
        "0.0%",
        "0",
        "4.00",
        "0",
        "",
    ]
    assert cells(line_with(text, "search", "ms")) == [
        "",
        "search",
        "10.0",
        "7.50 ms",
        "9.95 ms",
        "0.0%",
        "0",
        "0",
        "0.10",
        "",
    ]
    first = line_with(text, "recommend_missing_retrieval")
    wrapped = text.splitlines()[text.splitlines().index(first) + 1]  # the column wraps
    missing = cells(first)
    assert missing[1] == "(none yet)"
    assert f"{missing[-1]} {cells(wrapped)[-1]}" == "retrieve_not_deployed (no request yet)"
    assert "all routes: 64.0 req/s, 2.00 errors/s, 1.85 compute s/s" in text


def test_rendered_queue_table():
    text = rendered(view.render(snapshot()))
    assert "moderation queue · http://127.0.0.1:9108/metrics" in text
    header = cells(line_with(text, "store", "depth"))
    assert header == ["store", "depth", "oldest pending", "leases", "quarantined", "review backlog", "decisions/s"]
    assert cells(line_with(text, "sqlite")) == ["sqlite", "7", "2m 05s", "2", "4 (input 1, model 3)", "12", "6.50"]


def test_rendered_queue_table_when_the_store_is_down():
    text = rendered(view.queue_table("http://q/metrics", rates.QueueRow(store_up=False, backend="redis")))
    assert cells(line_with(text, "redis"))[0] == "redis: down"
    assert "could not read its store" in text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (0.00084, "0.84 ms"), (0.0175, "17.5 ms"), (0.045, "45.0 ms"), (2.345, "2.35 s")],
)
def test_latency_text(value, text):
    assert view.seconds_text(value) == text


@pytest.mark.parametrize(("value", "text"), [(0, "0 s"), (12.34, "12.3 s"), (125.5, "2m 05s"), (7380, "2h 03m")])
def test_age_text(value, text):
    assert view.age_text(value) == text


# -- the command, against a local endpoint ----------------------------------------------


class Endpoint:
    """Answers GET with the next of `bodies` (the last one again once they run out)."""

    def __init__(self, bodies: list[str], status: int = 200, content_type: str = "text/plain; version=0.0.4"):
        self.bodies, self.status, self.content_type, self.hits = list(bodies), status, content_type, 0

    def answer(self) -> tuple[int, str]:
        body = self.bodies[min(self.hits, len(self.bodies) - 1)]
        self.hits += 1
        return self.status, body


@contextmanager
def serving(*endpoints: Endpoint):
    """One local HTTP server per endpoint; yields their /metrics URLs."""
    servers = []
    for endpoint in endpoints:

        class Handler(http.server.BaseHTTPRequestHandler):
            target = endpoint

            def do_GET(self):  # noqa: N802 - the base class's name
                status, body = self.target.answer()
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", self.target.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}/metrics" for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def app(monkeypatch):
    """The command as the lead wires it, with scrapes timestamped 2 s apart."""
    import marquee.top.scrape as scrape

    class Clock:
        """time.monotonic for the scrapes; time.sleep between them moves it on."""

        now = 100.0

        @classmethod
        def monotonic(cls):
            return cls.now

        @classmethod
        def sleep(cls, seconds):
            cls.now += seconds

    monkeypatch.setattr(scrape, "time", Clock)
    monkeypatch.setattr("marquee.top.snapshot.time.sleep", Clock.sleep)
    monkeypatch.delenv("COLUMNS", raising=False)
    cli = typer.Typer()
    cli.command("top")(top_command)
    return cli


def test_once_prints_one_window(app):
    with serving(Endpoint([BEFORE, AFTER]), Endpoint([QUEUE_BEFORE, QUEUE_AFTER])) as (triton, queue):
        result = CliRunner().invoke(app, ["--metrics-url", triton, "--queue-metrics", queue, "--once"])
    assert result.exit_code == 0, result.output
    assert cells(line_with(result.output, "home"))[2:7] == [
        "50.0",
        "17.5 ms",
        "45.0 ms",
        "10.0% (rank)",
        "2.00 (internal 1.50, input 0.50)",
    ]
    assert cells(line_with(result.output, "sqlite"))[1] == "7"


def test_an_unreachable_url_is_a_clear_error(app):
    with serving(Endpoint([AFTER])) as (url,):
        pass  # stopped: nothing listens there any more
    result = CliRunner().invoke(app, ["--metrics-url", url, "--once"])
    assert result.exit_code == 1
    assert f"error: cannot reach {url}" in result.output
    assert "Traceback" not in result.output


def test_a_url_without_a_scheme_is_refused():
    with pytest.raises(TopError, match=r"must start with http:// or https://"):
        fetch("127.0.0.1:8002/metrics")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (Endpoint(["<html>hello</html>"], content_type="text/html"), r"did not answer in the Prometheus text format"),
        (Endpoint(["not found"], status=404), r"answered HTTP 404"),
        (Endpoint([QUEUE_AFTER]), r"missing nv_inference_request_success"),
        (Endpoint(['nv_inference_request_success{model="m",version="1"} 1\n']), r"missing marquee_route_dep"),
    ],
)
def test_not_marquee_metrics_is_a_clear_error(app, endpoint, message):
    with serving(endpoint) as (url,):
        result = CliRunner().invoke(app, ["--metrics-url", url, "--once"])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output
    assert re.search(message, " ".join(result.output.split())), result.output


def test_queue_metrics_pointing_at_triton_is_a_clear_error(app):
    with serving(Endpoint([BEFORE, AFTER]), Endpoint([AFTER])) as (triton, wrong):
        result = CliRunner().invoke(app, ["--metrics-url", triton, "--queue-metrics", wrong, "--once"])
    assert result.exit_code == 1
    assert "missing marquee_moderation_queue_store_up" in " ".join(result.output.split())


def test_scraper_starts_a_new_window_after_a_failed_scrape():
    answers = iter([parse(BEFORE, 100.0), TopError("boom"), parse(BEFORE, 104.0), parse(AFTER, 106.0)])

    def fetcher(url, timeout):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    scraper = Scraper("u", fetcher=fetcher)
    assert scraper.tick() is None
    with pytest.raises(TopError, match="boom"):
        scraper.tick()
    assert scraper.tick() is None  # the first scrape of a new window
    snap = scraper.tick()
    assert snap.seconds == 2.0 and snap.row("recommend", "home").requests_per_s == 50.0
