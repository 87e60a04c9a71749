"""Grafana dashboards for Marquee, rendered into deploy/grafana/ from the same names the
routes, the queue endpoint and the Prometheus rules use.

    python -m marquee.observability.dashboards            # write deploy/grafana/
    python -m marquee.observability.dashboards --check    # exit 1 when a committed file is stale

Four dashboards (Grafana's classic JSON model, schemaVersion 41, Grafana 12):
recommendation, moderation, transcription, and cost by surface. Every panel queries a
`${datasource}` Prometheus data source variable. Where a recording rule exists the panel
reads the rule's series (its name imported from marquee/observability/rules.py), so a
renamed metric or rule changes the rendered files and fails `--check`; the other panels
are built from the metric names that rules.py holds for the routes and the queue.

Rates use the rules' window (`rules.RATE_WINDOW`) rather than Grafana's
`$__rate_interval`, so a panel and the rule beside it average over the same time and
tests/integration/test_prometheus_live.py can run every panel's query as written (only
`$route` and `$surface` are replaced, by their "All" value).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from marquee.moderation import metrics as queue_metrics
from marquee.observability import rendered_files, rules

PROJECT_ROOT = rendered_files.PROJECT_ROOT
GRAFANA_DIR = PROJECT_ROOT / "deploy" / "grafana"
PROVISIONING_FILE = GRAFANA_DIR / "provisioning" / "dashboards.yaml"
# Where the provisioning file tells Grafana to look; copy deploy/grafana/*.json there.
PROVISIONED_PATH = "/var/lib/grafana/dashboards/marquee"
SCHEMA_VERSION = 41  # Grafana 12's classic dashboard model
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ALL = ".*"  # what a template variable's "All" stands for in a regex matcher
GRID_WIDTH = 24  # Grafana's grid is 24 columns wide

# Triton's own series that panels read directly (Triton defines them; the live test
# checks they have data).
TRITON_INFERENCE_COUNT = "nv_inference_count"
TRITON_METRICS = (TRITON_INFERENCE_COUNT,)

RENDERED_BY = "Rendered by `python -m marquee.observability.dashboards`; do not edit, edit the code."


# -- the model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat", "table"
    width: int = 12
    height: int = 8
    threshold: float | None = None  # a red line (timeseries) or colour step (stat)


@dataclass(frozen=True)
class Variable:
    """A query variable over one label of a metric: "All" (`.*`) by default, several
    values allowed. A `surface` variable lists the surfaces of the chosen routes."""

    name: str
    label: str
    metric: str

    @property
    def query(self) -> str:
        selector = '{route=~"$route"}' if self.name != "route" else ""
        return f"label_values({self.metric}{selector}, {self.name})"


def _route_and_surface(route_metric: str, surface_metric: str | None = None) -> tuple[Variable, Variable]:
    return Variable("route", "Route", route_metric), Variable("surface", "Surface", surface_metric or route_metric)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=())

    @property
    def path(self) -> Path:
        return GRAFANA_DIR / f"{self.uid}.json"


# -- PromQL helpers -----------------------------------------------------------------


def _matchers(route: bool = True, surface: bool = True, **fixed: str) -> str:
    """`{route=~"$route", surface=~"$surface", key="value"...}`; `fixed` values that start
    with `!` or `~` become `!=` / `=~` matchers."""
    parts = []
    if route:
        parts.append('route=~"$route"')
    if surface:
        parts.append('surface=~"$surface"')
    for key, value in fixed.items():
        operator = "="
        if value and value[0] in "!~":
            operator, value = ("!=" if value[0] == "!" else "=~"), value[1:]
        parts.append(f'{key}{operator}"{value}"')
    return "{" + ", ".join(parts) + "}" if parts else ""


def _rate(metric: str, selector: str, by: str | None) -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{selector}[{rules.RATE_WINDOW}]))"


def _names_regex(names) -> str:
    return "|".join(sorted(names))


def _ranker_models() -> str:
    from marquee.specs.ranker import RANKER_BY_PRECISION

    return _names_regex(spec.name for spec in RANKER_BY_PRECISION.values())


def _recommend_models() -> str:
    """The models a recommend page needs (the route's `serve_with`)."""
    from marquee.specs.recommend import RECOMMEND

    return _names_regex(RECOMMEND.budget.serve_with)


# -- the four dashboards ----------------------------------------------------------------

ROUTE_SURFACE_LEGEND = "{{route}} / {{surface}}"


def recommendation() -> Dashboard:
    sel = _matchers()
    requests = rules.ROUTE_REQUESTS
    degraded_by_reason = (
        f"{_rate(requests, _matchers(outcome='degraded'), 'route, reason')}\n"
        f"  / ignoring (reason) group_left\n"
        f"{_rate(requests, sel, 'route')}"
    )
    candidates_per_page = (
        f"{_rate(rules.RECOMMEND_CANDIDATES, sel, 'route, step')}\n"
        f"  / ignoring (step) group_left\n"
        f"{_rate(requests, _matchers(outcome='!error'), 'route')}"
    )
    panels = (
        Panel(
            "Page p99 by surface",
            "99th percentile of the time from a page request's arrival to its answer, by surface, "
            f"over {rules.RATE_WINDOW} (recording rule {rules.P99_ROUTE_SURFACE}).",
            (Query(f"{rules.P99_ROUTE_SURFACE}{sel}", ROUTE_SURFACE_LEGEND),),
            unit="s",
        ),
        Panel(
            "p99 by stage and surface",
            "99th percentile of each stage (retrieve, filter, rank, rules) of a page, by surface "
            f"(recording rule {rules.P99_STAGE}). The stage that grew is the one to look at.",
            (Query(f"{rules.P99_STAGE}{sel}", "{{route}} / {{stage}} / {{surface}}"),),
            unit="s",
        ),
        Panel(
            "Pages per second by outcome",
            f"ok, degraded (a cheaper order was served) and error, by surface (recording rule {rules.REQUEST_RATE}).",
            (Query(f"{rules.REQUEST_RATE}{sel}", "{{route}} / {{surface}} / {{outcome}}"),),
            unit="reqps",
        ),
        Panel(
            "Degraded pages (share of pages)",
            "Share of pages served in a cheaper order, per route and for every surface "
            f"(recording rule {rules.FALLBACK_RATIO}); the red line is the "
            f"MarqueeRecommendFallbackRateHigh alert's {rules.FALLBACK_RATE_MAX:.0%}.",
            (Query(f"{rules.FALLBACK_RATIO}{_matchers(surface=False)}", "{{route}}"),),
            unit="percentunit",
            threshold=rules.FALLBACK_RATE_MAX,
        ),
        Panel(
            "Degraded pages by reason (share of pages)",
            "Why pages were degraded: the stage that fell back (retrieve, rank) or `dependency` "
            "(a composed model is not loaded), as a share of all pages of the selected surfaces.",
            (Query(degraded_by_reason, "{{route}} / {{reason}}"),),
            unit="percentunit",
        ),
        Panel(
            "Candidates surviving each filter, per page",
            "Average candidates per answered page after each step: retrieved, licensed (region), "
            "unwatched, unblocked, and ranked (sent to the ranker).",
            (Query(candidates_per_page, "{{route}} / {{step}}"),),
        ),
        Panel(
            "Ranking throughput",
            "Candidates the route sent to the ranker per second, by surface, and the items the ranker "
            f"models scored per second ({TRITON_INFERENCE_COUNT}, Triton's own count).",
            (
                Query(
                    _rate(rules.RECOMMEND_CANDIDATES, _matchers(step="ranked"), "route, surface"),
                    "ranked by {{route}} / {{surface}}",
                ),
                Query(
                    _rate(TRITON_INFERENCE_COUNT, f'{{model=~"{_ranker_models()}"}}', "model"),
                    "scored by {{model}}",
                ),
            ),
            unit="short",
        ),
        Panel(
            "Mean latency of the models a page needs",
            "Triton's per-model mean request latency, queueing included "
            f"(recording rule {rules.MODEL_MEAN_LATENCY}); no quantiles, Triton exports counters only.",
            (Query(f'{rules.MODEL_MEAN_LATENCY}{{model=~"{_recommend_models()}"}}', "{{model}}"),),
            unit="s",
        ),
        Panel(
            "Composed models ready",
            "1 when a model the route composes is loaded, 0 when not (the route answers degraded). "
            "Refreshed when the route serves, and 0 until its first request.",
            (
                Query(
                    f"min by (route, model) ({rules.DEPENDENCY_READY}{_matchers(surface=False)})",
                    "{{route}} / {{model}}",
                ),
            ),
            kind="stat",
            width=24,
            height=4,
        ),
    )
    return Dashboard(
        "marquee-recommendation",
        "Marquee / Recommendation",
        "The recommend route: latency by stage and surface, degraded pages and why, "
        "candidates through the filters, ranking throughput. " + RENDERED_BY,
        _route_and_surface(rules.RECOMMEND_PAGES, rules.RECOMMEND_CANDIDATES),
        panels,
        tags=("recommendation",),
    )


def moderation() -> Dashboard:
    sel = _matchers()
    decisions = rules.MODERATION_DECISIONS
    panels = (
        Panel(
            "Decisions per second by category and decision",
            "What the moderation routes decided, by policy category (or image label, or error kind "
            "for decision `error`), for the selected routes and surfaces.",
            (Query(_rate(decisions, sel, "category, decision"), "{{category}} / {{decision}}"),),
            unit="short",
        ),
        Panel(
            "Decisions per second by surface",
            "The same decisions by the surface that asked and the decision.",
            (Query(_rate(decisions, sel, "surface, decision"), "{{surface}} / {{decision}}"),),
            unit="short",
        ),
        Panel(
            "Route p99 by surface",
            f"99th percentile of a moderation request, by surface (recording rule {rules.P99_ROUTE_SURFACE}).",
            (Query(f"{rules.P99_ROUTE_SURFACE}{sel}", ROUTE_SURFACE_LEGEND),),
            unit="s",
        ),
        Panel(
            "Queue depth and leases",
            "Items pending (retry backoffs included) and items leased to a worker now, as the store "
            f"reports them ({rules.QUEUE_DEPTH}, {rules.QUEUE_LEASES}). The queue has no surface label.",
            (
                Query(rules.QUEUE_DEPTH, "pending / {{job}}"),
                Query(rules.QUEUE_LEASES, "leased / {{job}}"),
            ),
        ),
        Panel(
            "Classification lag",
            "How long the oldest pending item has waited since it was enqueued (0 when none); the "
            f"red line is the MarqueeModerationQueueLagHigh alert's {rules.QUEUE_LAG_LIMIT_S:g} s.",
            (Query(rules.QUEUE_LAG, "oldest pending / {{job}}"),),
            unit="s",
            threshold=rules.QUEUE_LAG_LIMIT_S,
        ),
        Panel(
            "Quarantined items by error kind",
            "Items in quarantine now (input: the producer's bad item; model, server, lease, unknown: "
            f"faults), and the change over {rules.QUARANTINE_WINDOW}.",
            (
                Query(rules.QUEUE_QUARANTINED, "{{error_kind}}"),
                Query(rules.QUEUE_QUARANTINE_GROWTH, "{{error_kind}} / change over " + rules.QUARANTINE_WINDOW),
            ),
        ),
        Panel(
            "Review backlog",
            "Items the models sent to human review. The queue keeps no reviewed state, so this is every "
            "item decided `review`.",
            (Query(rules.QUEUE_REVIEW_BACKLOG, "review backlog"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Queue depth now",
            "Items pending now.",
            (Query(rules.QUEUE_DEPTH, "pending"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Queue decisions per second",
            f"Decisions recorded in the queue's store, by decision (recording rule {rules.QUEUE_DECISION_RATE}).",
            (Query(rules.QUEUE_DECISION_RATE, "{{decision}}"),),
            unit="short",
        ),
        Panel(
            "Queue store readable",
            "1 when the queue endpoint's last scrape read the store; 0 means the queue series above "
            f"are missing, not zero ({queue_metrics.STORE_UP}).",
            (Query(f"min by (backend) ({queue_metrics.STORE_UP})", "{{backend}}"),),
            kind="stat",
            width=24,
            height=4,
        ),
    )
    return Dashboard(
        "marquee-moderation",
        "Marquee / Moderation",
        "The moderation routes' decisions by category, decision and surface, and the moderation "
        "queue: depth, classification lag, quarantine by error kind, review backlog. " + RENDERED_BY,
        _route_and_surface(decisions),
        panels,
        tags=("moderation",),
    )


def transcription() -> Dashboard:
    sel = _matchers()
    audio = rules.TRANSCRIPTION_AUDIO_SECONDS
    cost = f"3600 * {_rate(rules.ROUTE_COMPUTE, sel, 'route, surface')}\n  / {_rate(audio, sel, 'route, surface')}"
    panels = (
        Panel(
            "Audio seconds transcribed per second",
            "Seconds of audio in clips that did not fail, per second of wall time, by route and surface. "
            "Above 1: faster than real time.",
            (Query(_rate(audio, sel, "route, surface"), ROUTE_SURFACE_LEGEND),),
            unit="short",
        ),
        Panel(
            "Audio hours transcribed, last 24 h",
            "Hours of audio transcribed over the last day, every selected route and surface.",
            (Query(f"sum (increase({audio}{sel}[24h])) / 3600", "audio hours"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Requests per second by outcome",
            f"ok, degraded and error requests, by surface (recording rule {rules.REQUEST_RATE}).",
            (Query(f"{rules.REQUEST_RATE}{sel}", "{{route}} / {{surface}} / {{outcome}}"),),
            unit="reqps",
            width=6,
        ),
        Panel(
            "Request p99 by surface",
            f"99th percentile of a transcription request, by surface (recording rule {rules.P99_ROUTE_SURFACE}).",
            (Query(f"{rules.P99_ROUTE_SURFACE}{sel}", ROUTE_SURFACE_LEGEND),),
            unit="s",
        ),
        Panel(
            "p99 by stage",
            f"99th percentile of the features and decode stages (recording rule {rules.P99_STAGE}).",
            (Query(f"{rules.P99_STAGE}{sel}", "{{route}} / {{stage}} / {{surface}}"),),
            unit="s",
        ),
        Panel(
            "Cost: compute-seconds per audio hour",
            "Route instance busy seconds (marquee_route_compute_seconds_total: the route's wall time, "
            "its waits on the encoder and decoder included) per hour of audio transcribed, by surface. "
            "The unit of cost: multiply by an instance-second's price.",
            (Query(cost, ROUTE_SURFACE_LEGEND),),
            unit="s",
            width=24,
        ),
    )
    return Dashboard(
        "marquee-transcription",
        "Marquee / Transcription",
        "The transcribe routes: audio processed, latency by surface and stage, and cost as "
        "compute-seconds per audio hour. " + RENDERED_BY,
        _route_and_surface(audio),
        panels,
        tags=("transcription",),
    )


def cost_by_surface() -> Dashboard:
    sel = _matchers()
    compute = rules.ROUTE_COMPUTE
    share = f"{_rate(compute, sel, 'surface')}\n  / on () group_left\n{_rate(compute, _matchers(surface=False), None)}"
    panels = (
        Panel(
            "Compute-seconds per 1,000 requests",
            "Route instance busy seconds per 1,000 requests, by route and surface "
            f"(recording rule {rules.COMPUTE_PER_1000}): what a surface's traffic costs a route.",
            (Query(f"{rules.COMPUTE_PER_1000}{sel}", ROUTE_SURFACE_LEGEND),),
            unit="s",
        ),
        Panel(
            "Share of compute by surface",
            "Each surface's part of the selected routes' busy seconds: how to split their cost.",
            (Query(share, "{{surface}}"),),
            unit="percentunit",
        ),
        Panel(
            "Compute-seconds per second by route and surface",
            "Route instance busy seconds per second (about the number of busy instances).",
            (Query(_rate(compute, sel, "route, surface"), ROUTE_SURFACE_LEGEND),),
            unit="short",
        ),
        Panel(
            "Requests per second by route and surface",
            f"Every outcome (recording rule {rules.REQUEST_RATE}).",
            (Query(f"sum by (route, surface) ({rules.REQUEST_RATE}{sel})", ROUTE_SURFACE_LEGEND),),
            unit="reqps",
        ),
        Panel(
            "Compute-seconds per 1,000 requests, now",
            f"The latest value of {rules.COMPUTE_PER_1000}, one row per route and surface.",
            (Query(f"{rules.COMPUTE_PER_1000}{sel}", ROUTE_SURFACE_LEGEND),),
            unit="s",
            kind="table",
            width=24,
        ),
    )
    return Dashboard(
        "marquee-cost-by-surface",
        "Marquee / Cost by surface",
        "Route compute-seconds (instance busy seconds) per 1,000 requests and each surface's "
        "share of them, the basis for splitting the cost of shared pools. " + RENDERED_BY,
        _route_and_surface(compute),
        panels,
        tags=("cost",),
    )


def dashboards() -> list[Dashboard]:
    return [recommendation(), moderation(), transcription(), cost_by_surface()]


# -- Grafana JSON -----------------------------------------------------------------------


def _target(query: Query, ref: str, instant: bool) -> dict:
    target = {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend, "refId": ref}
    if instant:
        target.update(instant=True, range=False, format="table")
    else:
        target.update(instant=False, range=True)
    return target


def _thresholds(threshold: float | None) -> dict:
    steps = [{"color": "green", "value": None}]
    if threshold is not None:
        steps.append({"color": "red", "value": threshold})
    return {"mode": "absolute", "steps": steps}


def _panel_json(panel: Panel, panel_id: int, grid: dict) -> dict:
    instant = panel.kind == "table"
    defaults: dict = {"unit": panel.unit, "thresholds": _thresholds(panel.threshold)}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 0,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line" if panel.threshold is not None else "off"},
        }
        options = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    elif panel.kind == "table":
        options = {"showHeader": True, "cellHeight": "sm"}
    else:
        raise ValueError(f"panel {panel.title!r}: kind={panel.kind!r}; allowed: timeseries, stat, table")
    body = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(query, chr(ord("A") + i), instant) for i, query in enumerate(panel.queries)],
    }
    if instant:
        # Instant rows carry a Time column that says nothing here.
        body["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return body


def _layout(panels: tuple[Panel, ...]) -> list[dict]:
    """Left to right, a new row when the next panel does not fit; ids from 1."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if not 0 < panel.width <= GRID_WIDTH:
            raise ValueError(f"panel {panel.title!r}: width={panel.width}; allowed: 1 to {GRID_WIDTH}")
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append(_panel_json(panel, panel_id, {"h": panel.height, "w": panel.width, "x": x, "y": y}))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def _variable_json(variable: Variable) -> dict:
    query = variable.query
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,  # on time range change: new surfaces and routes appear
        "includeAll": True,
        "allValue": ALL,
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
        "skipUrlSync": False,
    }


def _datasource_variable() -> dict:
    return {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "refresh": 1,
        "regex": "",
        "includeAll": False,
        "multi": False,
        "hide": 0,
        "skipUrlSync": False,
    }


def dashboard_json(dashboard: Dashboard) -> dict:
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["marquee", *dashboard.tags],
        "id": None,
        "version": 1,
        "schemaVersion": SCHEMA_VERSION,
        "editable": True,
        "graphTooltip": 1,  # a shared crosshair across panels
        "fiscalYearStartMonth": 0,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "refresh": "30s",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [{"title": "Marquee", "type": "dashboards", "tags": ["marquee"], "asDropdown": True}],
        "templating": {"list": [_datasource_variable(), *(_variable_json(v) for v in dashboard.variables)]},
        "panels": _layout(dashboard.panels),
    }


def queries_as_run(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target of a dashboard's JSON, each template
    variable replaced by its "All" value: the queries Grafana sends by default."""
    variables = {v["name"]: v["allValue"] for v in dashboard["templating"]["list"] if v["type"] == "query"}
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
            found.append((panel["title"], target["refId"], expr))
    return found


def provisioning() -> str:
    return (
        "# Rendered by `python -m marquee.observability.dashboards`; do not edit.\n"
        f"# Grafana loads the dashboards copied from deploy/grafana/*.json into {PROVISIONED_PATH};\n"
        "# each asks for a Prometheus data source through its `datasource` variable.\n"
        "apiVersion: 1\n"
        "providers:\n"
        "  - name: marquee\n"
        "    folder: Marquee\n"
        "    type: file\n"
        "    disableDeletion: false\n"
        "    allowUiUpdates: false\n"
        "    updateIntervalSeconds: 60\n"
        "    options:\n"
        f"      path: {PROVISIONED_PATH}\n"
    )


# -- files -----------------------------------------------------------------------------


def rendered() -> dict[Path, str]:
    """Every file under deploy/grafana/ and its text."""
    files = {d.path: json.dumps(dashboard_json(d), indent=2) + "\n" for d in dashboards()}
    files[PROVISIONING_FILE] = provisioning()
    return files


def stale() -> list[Path]:
    return rendered_files.stale(rendered())


def write() -> list[Path]:
    return rendered_files.write(rendered())


def main(argv: list[str] | None = None) -> int:
    return rendered_files.main(argv, __doc__.splitlines()[0], "marquee.observability.dashboards", rendered)


if __name__ == "__main__":
    sys.exit(main())
