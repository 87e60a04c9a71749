"""Prometheus recording and alert rules, rendered into deploy/prometheus/ from the code
that knows the names, the budgets and the surfaces.

    python -m marquee.observability.rules            # write deploy/prometheus/*.yml
    python -m marquee.observability.rules --check    # exit 1 when a committed file is stale

Where each number comes from:
- p99 budgets: the route specs' `LatencyBudget` (what `perf/budgets.yaml` renders), one
  alert file per budget set, as `marquee perf gate` judges them: `gpu` takes
  `perf_latency_p99_us` of every route; `cpu` takes `cpu_p99_us` where a route declares
  one (the product SLO on any host) and has no p99 alert for the others;
- which surfaces a p99 budget binds: the interactive ones of policies/surfaces.yaml (a
  person waits); background and batch surfaces run at a lower priority and may queue;
- the fallback, quarantine and queue-lag limits: constants below, with their reasons.

Where the p99 comes from: Triton 2.51 exports no latency quantiles by default, only
cumulative counters (`nv_inference_request_duration_us`, `nv_inference_queue_duration_us`,
`nv_inference_request_success`, `nv_inference_count`); `--metrics-config
summary_latencies=true` adds per-model summaries, which Marquee does not pass and which
cannot be aggregated across replicas. The routes export histograms
(`marquee_route_request_duration_seconds{route,surface}`,
`marquee_route_stage_duration_seconds{route,stage,surface}`), so the p99 rules are
`histogram_quantile` over those; Triton's counters give per-model means.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from marquee.moderation import metrics as queue_metrics
from marquee.observability import rendered_files
from marquee.specs.base import ModelSpec

PROJECT_ROOT = rendered_files.PROJECT_ROOT
RULES_DIR = PROJECT_ROOT / "deploy" / "prometheus"
RECORDING_FILE = RULES_DIR / "marquee-recording.rules.yml"
BUDGET_SETS = ("cpu", "gpu")
ALERT_FILES = {budget_set: RULES_DIR / f"marquee-alerts-{budget_set}.rules.yml" for budget_set in BUDGET_SETS}
PROMETHEUS_CONFIG = RULES_DIR / "prometheus.yml"

# Route metrics (marquee/routes/route_runtime.py and recommend/model.py; a unit test reads
# the names back from those files).
ROUTE_DURATION = "marquee_route_request_duration_seconds"
STAGE_DURATION = "marquee_route_stage_duration_seconds"
ROUTE_REQUESTS = "marquee_route_requests_total"
ROUTE_COMPUTE = "marquee_route_compute_seconds_total"
DEPENDENCY_READY = "marquee_route_dependency_ready"
RECOMMEND_PAGES = "marquee_recommend_pages_total"
RECOMMEND_CANDIDATES = "marquee_recommend_candidates_total"
MODERATION_DECISIONS = "marquee_moderation_decisions_total"
TRANSCRIPTION_AUDIO_SECONDS = "marquee_transcription_audio_seconds_total"

# Degraded recommend pages (ranking skipped, or popularity order) above this share of the
# traffic for 10 minutes: a healthy route degrades only on cold starts and rare late stages.
FALLBACK_RATE_MAX = 0.05
# Moderation is asynchronous, but an item should be judged within minutes of its upload:
# the oldest pending item waiting longer than this means the workers are not keeping up.
QUEUE_LAG_LIMIT_S = 300.0
# Quarantine for faults (model, server, lease, unknown) growing at all over this window,
# for as long again: a fault that outlasts the retries, item after item. Bad input
# ("input") is the producers' problem and is left to the dashboards.
QUARANTINE_WINDOW = "15m"
RATE_WINDOW = "5m"

HEADER = """\
# Rendered by `python -m marquee.observability.rules` from {source}; do not edit.
# Checked by tests/unit/test_prometheus_rules.py (staleness, promtool check/test rules).
"""


@dataclass(frozen=True)
class RouteBudget:
    route: str
    p99_s: float


def route_specs() -> list[ModelSpec]:
    """Routes: the catalogue's models that compose others."""
    from marquee.specs import CATALOGUE

    return [spec for spec in CATALOGUE.values() if spec.composes]


def route_budgets(budget_set: str, specs: list[ModelSpec] | None = None) -> list[RouteBudget]:
    if budget_set not in BUDGET_SETS:
        raise ValueError(f"budget_set={budget_set!r}; allowed: {', '.join(BUDGET_SETS)}")
    budgets = []
    for spec in route_specs() if specs is None else specs:
        micros = spec.budget.perf_latency_p99_us if budget_set == "gpu" else spec.budget.cpu_p99_us
        if micros is not None:
            budgets.append(RouteBudget(spec.name, micros / 1e6))
    return budgets


def interactive_surfaces() -> list[str]:
    from marquee.surfaces import load_surfaces

    surfaces = load_surfaces()
    return sorted(name for name, surface in surfaces.by_name.items() if surface.workload_class == "interactive")


# -- recording rules -------------------------------------------------------------------

P99_ROUTE_SURFACE = f"route_surface:{ROUTE_DURATION}:p99_{RATE_WINDOW}"
P99_ROUTE = f"route:{ROUTE_DURATION}:p99_{RATE_WINDOW}"
# Experiments: the recommend route labels its series by cohort (none / control / treatment).
P99_ROUTE_COHORT = f"route_cohort:{ROUTE_DURATION}:p99_{RATE_WINDOW}"
COHORT_REQUEST_RATE = f"route_cohort_outcome:{ROUTE_REQUESTS.removesuffix('_total')}:rate{RATE_WINDOW}"
P99_STAGE = f"route_stage_surface:{STAGE_DURATION}:p99_{RATE_WINDOW}"
REQUEST_RATE = f"route_surface_outcome:{ROUTE_REQUESTS.removesuffix('_total')}:rate{RATE_WINDOW}"
COMPUTE_PER_1000 = f"route_surface:{ROUTE_COMPUTE.removesuffix('_total')}:per_1000_requests_{RATE_WINDOW}"
FALLBACK_RATIO = f"route:{RECOMMEND_PAGES.removesuffix('_total')}:degraded_ratio_{RATE_WINDOW}"
MODEL_MEAN_LATENCY = f"model:nv_inference_request_duration_seconds:mean_{RATE_WINDOW}"
MODEL_MEAN_QUEUE = f"model:nv_inference_queue_duration_seconds:mean_{RATE_WINDOW}"
MODEL_REQUEST_RATE = f"model:nv_inference_request_success:rate{RATE_WINDOW}"
QUEUE_DEPTH = f"job:{queue_metrics.DEPTH}:max"
QUEUE_LAG = f"job:{queue_metrics.OLDEST_PENDING_AGE}:max"
QUEUE_LEASES = f"job:{queue_metrics.LEASES_IN_FLIGHT}:max"
QUEUE_QUARANTINED = f"job_error_kind:{queue_metrics.QUARANTINED}:max"
QUEUE_QUARANTINE_GROWTH = f"job_error_kind:{queue_metrics.QUARANTINED}:delta{QUARANTINE_WINDOW}"
QUEUE_DECISION_RATE = f"job_decision:{queue_metrics.DECISIONS_TOTAL.removesuffix('_total')}:rate{RATE_WINDOW}"
QUEUE_REVIEW_BACKLOG = f"job:{queue_metrics.REVIEW_BACKLOG}:max"


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{RATE_WINDOW}]))"


def _p99(metric: str, by: str) -> str:
    return f"histogram_quantile(0.99, {_rate(metric + '_bucket', by + ', le')})"


def _triton_requests() -> str:
    # Triton's duration counters cover failed requests too.
    return f"({_rate('nv_inference_request_success', 'model')} + {_rate('nv_inference_request_failure', 'model')})"


def recording_groups() -> list[dict]:
    """Named `level:metric:operations`. Queue series come from every worker of a store
    alike, so they are taken as the `max` across instances."""
    routes = [
        (P99_ROUTE_SURFACE, _p99(ROUTE_DURATION, "route, surface")),
        (P99_ROUTE, _p99(ROUTE_DURATION, "route")),
        (P99_ROUTE_COHORT, _p99(ROUTE_DURATION, "route, cohort")),
        (COHORT_REQUEST_RATE, _rate(ROUTE_REQUESTS, "route, cohort, outcome")),
        (P99_STAGE, _p99(STAGE_DURATION, "route, stage, surface")),
        (REQUEST_RATE, _rate(ROUTE_REQUESTS, "route, surface, outcome")),
        # Route instance busy seconds per 1,000 requests: the unit of cost by surface.
        (
            COMPUTE_PER_1000,
            f"1000 * {_rate(ROUTE_COMPUTE, 'route, surface')} / {_rate(ROUTE_REQUESTS, 'route, surface')}",
        ),
        (
            FALLBACK_RATIO,
            f"{_rate(RECOMMEND_PAGES + '{degraded=' + chr(34) + 'true' + chr(34) + '}', 'route')} / "
            f"{_rate(RECOMMEND_PAGES, 'route')}",
        ),
    ]
    triton = [
        (MODEL_MEAN_LATENCY, f"{_rate('nv_inference_request_duration_us', 'model')} / {_triton_requests()} / 1e6"),
        (MODEL_MEAN_QUEUE, f"{_rate('nv_inference_queue_duration_us', 'model')} / {_triton_requests()} / 1e6"),
        (MODEL_REQUEST_RATE, _rate("nv_inference_request_success", "model")),
    ]
    queue = [
        (QUEUE_DEPTH, f"max without (instance) ({queue_metrics.DEPTH})"),
        (QUEUE_LAG, f"max without (instance) ({queue_metrics.OLDEST_PENDING_AGE})"),
        (QUEUE_LEASES, f"max without (instance) ({queue_metrics.LEASES_IN_FLIGHT})"),
        (QUEUE_QUARANTINED, f"max without (instance) ({queue_metrics.QUARANTINED})"),
        (QUEUE_QUARANTINE_GROWTH, f"max without (instance) (delta({queue_metrics.QUARANTINED}[{QUARANTINE_WINDOW}]))"),
        (QUEUE_DECISION_RATE, f"max without (instance) (rate({queue_metrics.DECISIONS_TOTAL}[{RATE_WINDOW}]))"),
        (QUEUE_REVIEW_BACKLOG, f"max without (instance) ({queue_metrics.REVIEW_BACKLOG})"),
    ]
    return [
        {"name": name, "rules": [{"record": record, "expr": expr} for record, expr in rules]}
        for name, rules in (("marquee-routes", routes), ("marquee-triton", triton), ("marquee-moderation-queue", queue))
    ]


def recorded_names() -> list[str]:
    return [rule["record"] for group in recording_groups() for rule in group["rules"]]


# -- alert rules -----------------------------------------------------------------------


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str, **labels: str) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": description},
    }


def _ms(seconds: float) -> str:
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


def p99_alerts(budget_set: str) -> list[dict]:
    surfaces = "|".join(interactive_surfaces())
    alerts = []
    for budget in route_budgets(budget_set):
        alerts.append(
            _alert(
                "MarqueeRouteP99OverBudget",
                f'{P99_ROUTE_SURFACE}{{route="{budget.route}", surface=~"{surfaces}"}} > {budget.p99_s:g}',
                "10m",
                "critical",
                f"{{{{ $labels.route }}}} p99 on surface {{{{ $labels.surface }}}} is over its "
                f"{_ms(budget.p99_s)} budget",
                f"p99 over the last {RATE_WINDOW} is {{{{ $value | humanizeDuration }}}} "
                f"(budget {_ms(budget.p99_s)}, {budget_set} budgets from the route's spec); "
                f"see {P99_STAGE} for the stage that grew",
                budget_set=budget_set,
                budget=_ms(budget.p99_s),
                route=budget.route,  # the series' own label; keeps the rules distinct for promtool's lint
            )
        )
    return alerts


def alert_groups(budget_set: str) -> list[dict]:
    common = [
        _alert(
            "MarqueeRecommendFallbackRateHigh",
            f"{FALLBACK_RATIO} > {FALLBACK_RATE_MAX:g}",
            "10m",
            "warning",
            f"{{{{ $labels.route }}}} serves over {FALLBACK_RATE_MAX:.0%} of its pages degraded",
            "{{ $value | humanizePercentage }} of pages in the last " + RATE_WINDOW + " used a cheaper order "
            "(ranking late or failed, or retrieval failed); degraded_reason in the responses says which",
        ),
        # A route refreshes the gauge when it serves a request (every 5 s at most), and it
        # reads 0 until the first one: only a route with traffic is judged by it.
        _alert(
            "MarqueeRouteDependencyMissing",
            f"{DEPENDENCY_READY} == 0 and on (route) {_rate(ROUTE_REQUESTS, 'route')} > 0",
            "2m",
            "critical",
            "{{ $labels.route }} is serving without {{ $labels.model }}",
            "a model the route composes is not loaded; the route answers degraded (recommend) or "
            "with error_kind model (moderation, transcription) until it is",
        ),
        _alert(
            "MarqueeModerationQueueLagHigh",
            f"{QUEUE_LAG} > {QUEUE_LAG_LIMIT_S:g}",
            "5m",
            "warning",
            f"the oldest pending moderation item has waited over {QUEUE_LAG_LIMIT_S:g}s",
            "oldest pending item: {{ $value | humanizeDuration }}; queue depth in " + QUEUE_DEPTH + ": the "
            "workers are not keeping up, or none is running",
        ),
        _alert(
            "MarqueeModerationQuarantineGrowing",
            f'{QUEUE_QUARANTINE_GROWTH}{{error_kind!="input"}} > 0',
            QUARANTINE_WINDOW,
            "warning",
            "moderation items keep going to quarantine with error kind {{ $labels.error_kind }}",
            f"the quarantine grew in every {QUARANTINE_WINDOW} window for {QUARANTINE_WINDOW}: a fault outlasts "
            "the retries; `marquee quarantine list` shows the reasons, `marquee quarantine replay` retries",
        ),
        _alert(
            "MarqueeModerationQueueStoreUnreadable",
            f"{queue_metrics.STORE_UP} == 0",
            "5m",
            "warning",
            "the moderation queue metrics cannot read the {{ $labels.backend }} store",
            "the endpoint answers, but its reads of the queue fail (see its log); the queue's own series are absent",
        ),
    ]
    return [
        {"name": f"marquee-latency-{budget_set}", "rules": p99_alerts(budget_set)},
        {"name": "marquee-health", "rules": common},
    ]


def alert_names(budget_set: str) -> set[str]:
    return {rule["alert"] for group in alert_groups(budget_set) for rule in group["rules"]}


# -- files -----------------------------------------------------------------------------


def prometheus_config(
    triton_targets: list[str],
    queue_targets: list[str],
    rule_files: list[str],
    interval: str = "15s",
) -> dict:
    """A Prometheus config scraping Triton's /metrics and the queue endpoints."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": "marquee-triton", "static_configs": [{"targets": triton_targets}]},
            {"job_name": "marquee-moderation-queue", "static_configs": [{"targets": queue_targets}]},
        ],
    }


def _dump(data: dict, source: str) -> str:
    return HEADER.format(source=source) + yaml.safe_dump(data, sort_keys=False, width=1_000)


def rendered() -> dict[Path, str]:
    """Every file under deploy/prometheus/ and its text."""
    files = {RECORDING_FILE: _dump({"groups": recording_groups()}, "the metric names in marquee/")}
    for budget_set, path in ALERT_FILES.items():
        source = f"the route specs' {budget_set} budgets and policies/surfaces.yaml"
        files[path] = _dump({"groups": alert_groups(budget_set)}, source)
    example = prometheus_config(
        ["localhost:8002"],  # Triton's metrics port (marquee serve's default)
        ["localhost:9108"],  # `marquee moderation worker --metrics-port 9108` / `marquee moderation metrics`
        [RECORDING_FILE.name, ALERT_FILES["cpu"].name],  # a GPU host takes the gpu file
    )
    files[PROMETHEUS_CONFIG] = _dump(example, "an example: one Triton, one queue endpoint, on this host")
    return files


def stale() -> list[Path]:
    return rendered_files.stale(rendered())


def write() -> list[Path]:
    return rendered_files.write(rendered())


def main(argv: list[str] | None = None) -> int:
    return rendered_files.main(argv, __doc__.splitlines()[0], "marquee.observability.rules", rendered)


if __name__ == "__main__":
    sys.exit(main())
