"""The Grafana dashboards in deploy/grafana/: rendered from marquee/observability/dashboards.py
and not stale, shaped as Grafana's dashboard model wants them, and querying only series
that something in Marquee defines (a route, the queue endpoint, a recording rule, or
Triton). tests/integration/test_prometheus_live.py runs every query against a live
Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from marquee.moderation import metrics as queue_metrics
from marquee.observability import dashboards, rules

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(dashboards.GRAFANA_DIR.glob("*.json"))
PANEL_TYPES = {"timeseries", "stat", "table"}
PROMTOOL = shutil.which("promtool")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _targets(dashboard: dict):
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel, target


def test_committed_dashboards_are_what_the_code_renders():
    stale = [str(path.relative_to(ROOT)) for path in dashboards.stale()]
    assert stale == [], f"stale: {stale}; run `python -m marquee.observability.dashboards` and commit the result"
    assert dashboards.main(["--check"]) == 0
    assert {path.name for path in COMMITTED} == {d.path.name for d in dashboards.dashboards()}


def test_check_reports_a_dashboard_edited_by_hand(tmp_path, monkeypatch, capsys):
    path = dashboards.recommendation().path
    copy = tmp_path / path.name
    copy.write_text(path.read_text().replace('"refresh": "30s"', '"refresh": "5s"'))
    rendered = dashboards.rendered()
    monkeypatch.setattr(dashboards, "rendered", lambda: {copy: rendered[path]})
    assert dashboards.stale() == [copy]


def test_a_renamed_recording_rule_changes_the_rendered_dashboards(monkeypatch):
    """Panels take the rules' names from rules.py: renaming one there changes (and so
    stales) every dashboard that shows it, instead of leaving a panel on a dead name."""
    monkeypatch.setattr(rules, "P99_STAGE", "route_stage_surface:renamed:p99_5m")
    monkeypatch.setattr(rules, "COMPUTE_PER_1000", "route_surface:renamed:per_1000_requests_5m")
    stale = {path.name for path in dashboards.stale()}
    assert stale == {"marquee-recommendation.json", "marquee-transcription.json", "marquee-cost-by-surface.json"}


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_dashboard_model(path):
    dashboard = _load(path)
    assert dashboard["schemaVersion"] == dashboards.SCHEMA_VERSION >= 39  # Grafana 11 and later
    assert dashboard["uid"] == path.stem and len(dashboard["uid"]) <= 40  # Grafana's uid limit
    assert dashboard["title"].startswith("Marquee") and "marquee" in dashboard["tags"]
    assert dashboard["id"] is None  # Grafana assigns it on import
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("route", "surface"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == dashboards.DATASOURCE
        assert variable["includeAll"] and variable["allValue"] == ".*" and variable["multi"]
        assert variable["query"]["query"] == variable["definition"]
        assert re.fullmatch(rf"label_values\((marquee_\w+)(\{{.*\}})?, {name}\)", variable["definition"])


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_every_panel_has_an_id_a_place_a_datasource_and_queries(path):
    dashboard = _load(path)
    panels = dashboard["panels"]
    assert len(panels) >= 4
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["title"].strip() and panel["description"].strip(), panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in grid.values()), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= dashboards.GRID_WIDTH, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        refs = [target["refId"] for target in targets]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert isinstance(target["legendFormat"], str) and target["legendFormat"], panel["title"]
            assert target["datasource"] == panel["datasource"]
            assert target.get("instant", False) == (panel["type"] == "table")


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_every_variable_an_expression_uses_is_defined(path):
    dashboard = _load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for panel, target in _targets(dashboard):
        used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
        assert used <= defined, f"{panel['title']}: {sorted(used - defined)} not in templating"


def _histograms() -> set[str]:
    return {rules.ROUTE_DURATION, rules.STAGE_DURATION}


def _route_metric_names() -> set[str]:
    """Names the routes define: they run inside Triton, so they are read from their source."""
    sources = "\n".join(path.read_text() for path in (ROOT / "marquee" / "routes").rglob("*.py"))
    return set(re.findall(r'"(marquee_[a-z0-9_]+)"', sources))


def known_metrics() -> set[str]:
    route = _route_metric_names()
    queue = {
        value for name, value in vars(queue_metrics).items() if name.isupper() and str(value).startswith("marquee_")
    }
    known = route | queue | set(rules.recorded_names()) | set(dashboards.TRITON_METRICS)
    for histogram in _histograms() & route:
        known |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return known


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\b(?:[a-z_]+:)?(?:marquee|nv)_[a-z0-9_]+(?::[a-z0-9_]+)?", without_strings))


def test_the_route_metric_names_in_rules_py_are_the_routes():
    routes = _route_metric_names()
    for name in (rules.RECOMMEND_CANDIDATES, rules.MODERATION_DECISIONS, rules.TRANSCRIPTION_AUDIO_SECONDS):
        assert name in routes, f"no route defines {name}"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_every_metric_an_expression_names_is_defined_somewhere(path):
    known = known_metrics()
    dashboard = _load(path)
    for panel, target in _targets(dashboard):
        names = _metric_names(target["expr"])
        assert names, f"{panel['title']}: no metric in {target['expr']!r}"
        assert names <= known, f"{panel['title']}: unknown {sorted(names - known)}"
    for variable in dashboard["templating"]["list"][1:]:
        assert _metric_names(variable["definition"]) <= known, variable["name"]


def test_the_tests_metric_extraction_finds_rule_and_raw_names():
    expr = 'sum by (route) (rate(marquee_route_requests_total{surface="home"}[5m])) / route:marquee_x:p99_5m'
    assert _metric_names(expr) == {"marquee_route_requests_total", "route:marquee_x:p99_5m"}
    assert not _metric_names('up{job="marquee_route_requests_total"}')


def test_percentiles_and_rule_series_come_from_the_recording_rules():
    """A p99 is never recomputed in a panel, and the rules' main series are all shown."""
    exprs = "\n".join(target["expr"] for path in COMMITTED for _, target in _targets(_load(path)))
    assert "histogram_quantile" not in exprs
    for name in (
        rules.P99_ROUTE_SURFACE,
        rules.P99_STAGE,
        rules.REQUEST_RATE,
        rules.COMPUTE_PER_1000,
        rules.FALLBACK_RATIO,
        rules.MODEL_MEAN_LATENCY,
        rules.QUEUE_DEPTH,
        rules.QUEUE_LAG,
        rules.QUEUE_LEASES,
        rules.QUEUE_QUARANTINED,
        rules.QUEUE_DECISION_RATE,
        rules.QUEUE_REVIEW_BACKLOG,
    ):
        assert name in exprs, f"no panel shows {name}"


def test_queries_as_run_replace_the_variables_by_all():
    dashboard = _load(dashboards.recommendation().path)
    queries = dashboards.queries_as_run(dashboard)
    assert len(queries) == sum(len(p["targets"]) for p in dashboard["panels"])
    assert all("$" not in expr for _, _, expr in queries)
    assert any('surface=~".*"' in expr for _, _, expr in queries)


@pytest.mark.skipif(PROMTOOL is None, reason="no promtool on PATH (Debian package `prometheus`)")
def test_every_query_parses_as_promql(tmp_path):
    """promtool parses each query (variables at their All value) as a recording rule."""
    rules_file = tmp_path / "dashboard-queries.rules.yml"
    recorded = []
    for path in COMMITTED:
        for title, ref, expr in dashboards.queries_as_run(_load(path)):
            slug = re.sub(r"\W+", "_", f"{path.stem}_{title}_{ref}").lower()
            recorded.append({"record": f"dashboard:{slug}", "expr": expr})
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": recorded}]}))
    done = subprocess.run([PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(recorded)} rules found" in done.stdout


def test_provisioning_points_grafana_at_a_folder():
    config = yaml.safe_load(dashboards.PROVISIONING_FILE.read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == dashboards.PROVISIONED_PATH
