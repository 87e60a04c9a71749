"""The shared route runtime's pure parts, the route manifests, and budgets declared once."""

from __future__ import annotations

import ast
import re

import pytest
from tritonclient.utils import InferenceServerException

from clients.errors import translate
from marquee.errors import QuotaExceededError
from marquee.routes import manifest, route_runtime
from marquee.routes.route_runtime import (
    QuotaExceeded,
    RouteConfigError,
    RouteObserver,
    RouteParameters,
    StageClock,
    TokenBucket,
)
from marquee.specs import CATALOGUE
from marquee.surfaces import SURFACE_HEADER, load_surfaces
from perf import budgets
from perf.gate import BUDGETS, load_budgets


def _parameters(**values: str) -> RouteParameters:
    return RouteParameters({"name": "route_x", "parameters": {k: {"string_value": v} for k, v in values.items()}})


def test_parameters_are_read_with_their_types():
    params = _parameters(n="7", ratio="0.25", on="TRUE", rank_budget_ms="10")
    assert params.integer("n") == 7
    assert params.number("ratio") == 0.25
    assert params.flag("on", default=False) is True
    assert params.budget_s("rank") == pytest.approx(0.010)
    assert params.integer("absent", 3) == 3


@pytest.mark.parametrize(
    ("values", "read", "message"),
    [
        ({}, lambda p: p.text("model"), "`model` is missing"),
        ({"n": "seven"}, lambda p: p.integer("n"), "`n`='seven' is not an integer"),
        ({"n": "0"}, lambda p: p.integer("n", minimum=1), "`n`=0; must be >= 1"),
        ({"on": "yes"}, lambda p: p.flag("on", default=True), "allowed: true, false"),
        ({}, lambda p: p.budget_s("rank"), "`rank_budget_ms` is missing"),
    ],
)
def test_bad_parameters_name_the_route_the_parameter_and_the_value(values, read, message):
    with pytest.raises(RouteConfigError, match="route_x") as error:
        read(_parameters(**values))
    assert message in str(error.value)


def test_stage_clock_adds_up_repeated_stages():
    clock = StageClock()
    for _ in range(2):
        with clock.stage("rank"):
            pass
    assert set(clock.rounded()) == {"rank", "total"}
    assert clock.remaining_s(0.0) == 0.0


def test_every_python_model_has_a_manifest():
    python_models = {spec.name for spec in CATALOGUE.values() if spec.backend == "python"}
    assert python_models <= set(manifest.MANIFESTS), sorted(python_models - set(manifest.MANIFESTS))


@pytest.mark.parametrize("name", sorted(manifest.MANIFESTS))
def test_a_manifest_holds_every_flat_module_its_route_imports(name):
    """A route imports its siblings as top-level modules (its version folder is on
    sys.path); each such module must travel in the manifest, or the route fails to load."""
    route = manifest.MANIFESTS[name]
    shipped = set(route.module_files())
    for source in [path for path in route.sources() if path.suffix == ".py"]:
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                candidate = f"{module}.py"
                if (source.parent / candidate).is_file() or candidate in (
                    "route_runtime.py",
                    "policy.py",
                    "surfaces.py",
                ):
                    assert candidate in shipped, f"{source.name} imports {module}, missing from {name}'s manifest"


def test_no_route_declares_a_stage_budget_in_its_parameters():
    for spec in CATALOGUE.values():
        assert not [k for k in spec.parameters if k.endswith("_budget_ms")], spec.name


def test_committed_budgets_yaml_is_rendered_from_the_specs():
    assert BUDGETS.read_text() == budgets.render_budgets(list(CATALOGUE.values()))
    loaded = load_budgets()
    for name, entry in loaded["models"].items():
        spec = CATALOGUE[name]
        assert entry["gpu"]["perf_latency_p99"]["max"] == spec.budget.perf_latency_p99_us
        assert entry["load"] == {"batch_size": spec.budget.batch_size, "concurrency": spec.budget.concurrency}


def test_a_route_budget_and_its_stage_deadlines_agree():
    recommend = CATALOGUE["recommend"]
    assert recommend.budget.perf_latency_p99_us == recommend.stage_budgets_ms["total"] * 1000
    stages = recommend.stage_budgets_ms
    assert stages["retrieve"] + stages["rank"] + stages["rules"] <= stages["total"]


def test_rendered_configs_carry_every_stage_deadline():
    from marquee.render import config_dict

    for spec in CATALOGUE.values():
        rendered = config_dict(spec).get("parameters", {})
        for stage, ms in spec.stage_budgets_ms.items():
            assert float(rendered[f"{stage}_budget_ms"]["string_value"]) == ms, (spec.name, stage)
    image_route = config_dict(CATALOGUE["moderate_image"])["parameters"]
    assert image_route["text_route_max_texts"]["string_value"] == CATALOGUE["moderate_text"].parameters["max_texts"]


SERVED_PYTHON = sorted(
    {*manifest.PACKAGE_ROOT.glob("routes/**/*.py"), *manifest.PACKAGE_ROOT.glob("backends/*/model.py")}
)


@pytest.mark.parametrize("source", SERVED_PYTHON, ids=lambda p: str(p.relative_to(manifest.PACKAGE_ROOT)))
def test_no_served_model_reads_another_models_folder(source):
    """A model may open files of its own version folder only, so a repository can live on
    object storage or a volume laid out differently: the repository path appears only
    joined with the model's own version, and nothing climbs out of it with `..`."""
    text = source.read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        if 'args["model_repository"]' in line:
            assert 'args["model_version"]' in line, f"{source.name}:{number}: {line.strip()}"
        assert '".."' not in line and "'..'" not in line, f"{source.name}:{number}: {line.strip()}"
        assert "dirname(os.path.abspath(args" not in line, f"{source.name}:{number}: {line.strip()}"


# -- quotas ---------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_its_depth_at_once_then_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, depth=5.0, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.wait_s() == pytest.approx(0.1)
    clock.now += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 60.0  # never more than its depth saved up
    assert sum(bucket.take() for _ in range(10)) == 5


def test_each_instance_enforces_its_share_of_a_surface_quota(tmp_path):
    surfaces_file = tmp_path / "surfaces.yaml"
    surfaces_file.write_text(
        "version: t1\ndefault_surface: open\nsurfaces:\n"
        "  open: {class: interactive, priority: 1, queue_timeout_ms: 0, quota_rps: 0}\n"
        "  tools: {class: background, priority: 2, queue_timeout_ms: 0, quota_rps: 8}\n"
    )
    clock = FakeClock()
    observer = object.__new__(RouteObserver)  # the quota part only: no Triton metrics here
    observer.surfaces = load_surfaces(surfaces_file)
    observer.quotas = RouteObserver.quota_buckets(observer.surfaces, instances=2, clock=clock)
    for _ in range(100):
        observer.admit("open")  # no quota: never refused
    admitted = 0
    with pytest.raises(QuotaExceeded) as refusal:
        for _ in range(10):
            observer.admit("tools")
            admitted += 1
    assert admitted == 4, "two instances: each admits half of the 8 requests/s burst"
    message = str(refusal.value)
    assert "surface 'tools' is over its quota of 8 requests/s" in message
    wait = re.search(r"quota refusal, retry after (\d+) ms", message)
    assert wait and int(wait.group(1)) == 250, message  # 4 tokens/s on this instance
    clock.now += 0.25
    observer.admit("tools")


def test_the_clients_read_a_routes_quota_refusal_as_retryable_with_its_wait():
    message = str(QuotaExceeded("tools", 8, 0.25))
    error = translate(InferenceServerException(f"recommend: {message}", status="StatusCode.UNAVAILABLE"), "m", "u")
    assert isinstance(error, QuotaExceededError) and error.retry_after_s == 0.25
    gateway = translate(InferenceServerException("over quota", status="429"), "m", "u")
    assert isinstance(gateway, QuotaExceededError) and gateway.retry_after_s is None
    grpc_gateway = translate(InferenceServerException("x", status="StatusCode.RESOURCE_EXHAUSTED"), "m", "u")
    assert isinstance(grpc_gateway, QuotaExceededError)
    down = translate(InferenceServerException("Socket closed", status="StatusCode.UNAVAILABLE"), "m", "u")
    assert not isinstance(down, QuotaExceededError)


def test_the_route_and_the_package_name_the_same_surface_header():
    assert route_runtime.SURFACE_HEADER == SURFACE_HEADER
