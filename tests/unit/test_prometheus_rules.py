"""The Prometheus rules in deploy/prometheus/: rendered from marquee/observability/rules.py
and not stale, valid for promtool, unit-tested by `promtool test rules`
(tests/prometheus/*.test.yml, which must cover every rule), named by convention, and tied
to the budgets, surfaces and metric names the code declares."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from marquee.moderation import metrics as queue_metrics
from marquee.observability import rules
from marquee.specs import CATALOGUE
from marquee.surfaces import load_surfaces

ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = ROOT / "tests" / "prometheus"
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))
RULE_FILES = [rules.RECORDING_FILE, *rules.ALERT_FILES.values()]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="no promtool on PATH (Debian package `prometheus`, installed by ./bootstrap.sh --test)",
)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def _groups(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text())["groups"]


def _alerts(budget_set: str) -> list[dict]:
    return [rule for group in _groups(rules.ALERT_FILES[budget_set]) for rule in group["rules"]]


def test_committed_rule_files_are_what_the_code_renders():
    stale = [str(path.relative_to(ROOT)) for path in rules.stale()]
    assert stale == [], f"stale: {stale}; run `python -m marquee.observability.rules` and commit the result"
    assert rules.main(["--check"]) == 0


def test_check_reports_a_file_edited_by_hand(tmp_path, monkeypatch):
    copy = tmp_path / rules.RECORDING_FILE.name
    copy.write_text(rules.RECORDING_FILE.read_text() + "# edited by hand\n")
    rendered = rules.rendered()
    monkeypatch.setattr(rules, "rendered", lambda: {copy: rendered[rules.RECORDING_FILE]})
    assert rules.stale() == [copy]


@needs_promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules_passes(path):
    done = _promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_promtool_check_config_passes_for_the_example_config():
    done = _promtool("check", "config", str(rules.PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules_passes(path):
    done = _promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_test_rules_fails_when_an_expectation_is_wrong(tmp_path):
    """The rule tests can fail: a wrong expected value is caught."""
    text = (TESTS_DIR / "marquee-rules.test.yml").read_text().replace("value: 0.04975", "value: 0.05", 1)
    broken = TESTS_DIR / "broken.test.yml.tmp"  # beside the original: rule_files are relative to it
    broken.write_text(text)
    try:
        done = _promtool("test", "rules", str(broken))
    finally:
        broken.unlink()
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def _tested(key: str) -> str:
    """Every `expr` (key "expr") or `alertname` (key "alertname") in the rule tests, joined."""
    found = []
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for entry in case.get("promql_expr_test", []) + case.get("alert_rule_test", []):
                if key in entry:
                    found.append(entry[key])
    return "\n".join(found)


def test_every_recording_rule_is_unit_tested_by_promtool():
    untested = [name for name in rules.recorded_names() if name not in _tested("expr")]
    assert untested == [], f"no promql_expr_test in tests/prometheus/ uses {untested}"


def test_every_alert_is_unit_tested_by_promtool():
    tested = set(_tested("alertname").split("\n"))
    for budget_set in rules.BUDGET_SETS:
        untested = rules.alert_names(budget_set) - tested
        assert untested == set(), f"no alert_rule_test in tests/prometheus/ for {untested}"


def test_recording_rules_are_named_level_metric_operations():
    for name in rules.recorded_names():
        level, metric, operations = name.split(":")
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", level), name
        assert metric.startswith(("marquee_", "nv_inference_")), name
        assert re.fullmatch(r"[a-z0-9_]+", operations), name


@pytest.mark.parametrize("budget_set", rules.BUDGET_SETS, ids=lambda s: f"{s}-budgets")
def test_every_alert_has_for_a_severity_and_a_summary(budget_set):
    for alert in _alerts(budget_set):
        assert re.fullmatch(r"\d+[smh]", alert["for"]), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
    assert rules.alert_names(budget_set) >= {
        "MarqueeRouteP99OverBudget",
        "MarqueeRecommendFallbackRateHigh",
        "MarqueeModerationQuarantineGrowing",
        "MarqueeModerationQueueLagHigh",
        "MarqueeRouteDependencyMissing",
    }


def _p99_thresholds(budget_set: str) -> dict[str, float]:
    out = {}
    for alert in _alerts(budget_set):
        if alert["alert"] == "MarqueeRouteP99OverBudget":
            match = re.fullmatch(r'.*\{route="(\w+)", surface=~"([\w|]+)"\} > ([0-9.e+-]+)', alert["expr"])
            assert match, alert["expr"]
            out[match.group(1)] = float(match.group(3))
    return out


def test_p99_budgets_are_the_specs_budgets():
    route_specs = [spec for spec in CATALOGUE.values() if spec.composes]
    assert {spec.name for spec in route_specs} >= {"recommend", "moderate_text", "moderate_image", "transcribe"}
    assert _p99_thresholds("gpu") == {spec.name: spec.budget.perf_latency_p99_us / 1e6 for spec in route_specs}
    # cpu: only routes that declare a CPU budget (the product SLO, as `marquee perf gate` judges it)
    declared = {spec.name: spec.budget.cpu_p99_us / 1e6 for spec in route_specs if spec.budget.cpu_p99_us}
    assert _p99_thresholds("cpu") == declared
    assert declared["recommend"] == CATALOGUE["recommend"].budget.cpu_p99_us / 1e6 == 0.03


def test_p99_budgets_bind_the_interactive_surfaces_of_the_surfaces_file():
    interactive = {name for name, s in load_surfaces().by_name.items() if s.workload_class == "interactive"}
    assert interactive and "batch" not in interactive
    for alert in _alerts("gpu"):
        if alert["alert"] == "MarqueeRouteP99OverBudget":
            surfaces = re.search(r'surface=~"([\w|]+)"', alert["expr"]).group(1)
            assert set(surfaces.split("|")) == interactive


def test_route_metric_names_are_the_ones_the_routes_export():
    """The routes run inside Triton, so their names are read from their source."""
    sources = "\n".join(path.read_text() for path in (ROOT / "marquee" / "routes").rglob("*.py"))
    for name in (
        rules.ROUTE_DURATION,
        rules.STAGE_DURATION,
        rules.ROUTE_REQUESTS,
        rules.ROUTE_COMPUTE,
        rules.DEPENDENCY_READY,
        rules.RECOMMEND_PAGES,
    ):
        assert f'name="{name}"' in sources, f"no route exports {name}"


def test_queue_rules_use_the_names_the_queue_endpoint_exports():
    text = rules.RECORDING_FILE.read_text()
    for name in (
        queue_metrics.DEPTH,
        queue_metrics.OLDEST_PENDING_AGE,
        queue_metrics.LEASES_IN_FLIGHT,
        queue_metrics.QUARANTINED,
        queue_metrics.DECISIONS_TOTAL,
        queue_metrics.REVIEW_BACKLOG,
    ):
        assert f"({name}" in text, name
    assert queue_metrics.STORE_UP in rules.ALERT_FILES["cpu"].read_text()
