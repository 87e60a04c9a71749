"""Ranker experiments on a real tritonserver in explicit model-control mode: cohorts,
shadow scoring under saturation, guardrails, rollback and promote under load, and the
A/B readout against the synthetic world's true click probabilities."""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from clients import RecommendClient
from marquee import render
from marquee.rollout import commands
from marquee.rollout.control import ModelControl
from marquee.rollout.files import RouteFiles
from marquee.routes.recommend.experiment import CONTROL, NO_COHORT, TREATMENT, assign_cohort, parse_experiment
from marquee.server import TritonServer, free_ports
from marquee.server.process import log_tail
from marquee.specs.ranker import RANKER_FP32, RANKER_INT8
from marquee.specs.recommend import RECOMMEND
from tests.conftest import TINY_TRAINING
from tests.integration.conftest import ROUTE_ITEMS

pytestmark = pytest.mark.integration

ROUTE = RECOMMEND.name
# FP32: its export is a copy, where INT8 is calibrated (both versions are exported below).
RANKER = RANKER_FP32.name
# The candidate ranker: the same architecture trained on a tenth of the log, so it ranks
# measurably worse (a realistic bad candidate for the A/B readout to catch).
WEAK_TRAINING = dataclasses.replace(TINY_TRAINING, train_rows=4_000, seed=2)
SETTLE_S = 1.0
# Guardrails a loaded 2-core CI host cannot trip by chance (the guardrail test sets its own).
LENIENT = {"p99_ms": 60_000.0, "max_degraded_rate": 1.0}


def _link(source: Path, target: Path) -> None:
    target.symlink_to(source, target_is_directory=True)


@pytest.fixture(scope="module")
def experiment_repository(route_repository, tmp_path_factory) -> Path:
    """Retrieval linked from the session repository; the route copied (its experiment
    file is written here) with budgets no healthy ranker misses, so pages do not degrade
    by chance on a loaded CI host; the FP32 ranker with version 1 (the session's) and a
    version 2 exported by `export_ranker(version=2)` from another checkpoint."""
    from export.ranker.pipeline import default_checkpoint, export_ranker

    repository = tmp_path_factory.mktemp("experiment_repository")
    for name in ("user_tower", "candidates_ivf", "retrieve_ivf"):
        _link(route_repository / name, repository / name)
    shutil.copytree(route_repository / ROUTE, repository / ROUTE)
    generous = dataclasses.replace(
        RECOMMEND,
        parameters={**RECOMMEND.parameters, "ranker_model": RANKER},
        stage_budgets_ms={**RECOMMEND.stage_budgets_ms, "retrieve": 2000, "rank": 2000, "total": 5000},
    )
    render.write([generous], repository)
    (repository / RANKER).mkdir()
    shutil.copy2(route_repository / RANKER / "config.pbtxt", repository / RANKER / "config.pbtxt")
    _link(route_repository / RANKER / "1", repository / RANKER / "1")
    weak = default_checkpoint(WEAK_TRAINING)
    # Both precisions: a retrained checkpoint must pass the INT8 export gate too, not only
    # the project's own training run. The route here calls FP32.
    results = export_ranker(repository, (RANKER_FP32.precision, RANKER_INT8.precision), checkpoint=weak, version=2)
    assert [(r.spec.name, r.path.parent.name) for r in results] == [(RANKER, "2"), (RANKER_INT8.name, "2")]
    return repository


@pytest.fixture(scope="module")
def server(experiment_repository, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("experiment-log") / "tritonserver.log"
    started = TritonServer(
        experiment_repository, free_ports(), log_path=log_path, models=[ROUTE, "retrieve_ivf", RANKER]
    ).start(timeout=180)
    from marquee.serving import warm_up_recommend

    warm_up_recommend(started.grpc_url, model=ROUTE)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def files(experiment_repository) -> RouteFiles:
    return RouteFiles(experiment_repository, ROUTE)


@pytest.fixture(scope="module")
def control(server) -> ModelControl:
    return ModelControl(server.http_url, server.admin_key)


@pytest.fixture
def baseline(files, control):
    """Every test starts and ends with no experiment and version 1 alone serving."""
    yield
    current = files.read()
    if current.control != 1 or current.treatment is not None or current.shadow is not None:
        fields = {"name": "baseline", "control": 1, "salt": "baseline"}
        files.write(fields, "reset", "test teardown")
        time.sleep(SETTLE_S)
    files.rollback.unlink(missing_ok=True)
    control.serve_versions(RANKER, [1])


def _visit(user: int) -> dict:
    return {"user_id": user, "region": user % 8, "history": [], "n": 10, "device": user % 4, "hour": user % 24}


def _drive(server, users, concurrency=4, cohort=None) -> list:
    """One page per user from `concurrency` threads; each result is a page or the exception."""
    local = threading.local()

    def one(user):
        if not hasattr(local, "client"):
            local.client = RecommendClient(server.grpc_url, timeout_s=10.0)
        try:
            return local.client.recommend(**_visit(user), cohort=cohort)
        except Exception as error:  # noqa: BLE001 - counted as a failed request by the tests
            return error

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, users))


class _Background:
    """`_run(k)` in `threads` background threads until the `with` block ends."""

    def __init__(self, server, threads: int):
        self.server, self._stop = server, threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(threads)]

    def _run(self, k: int) -> None:
        raise NotImplementedError

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


class _Load(_Background):
    """Pages requested in a loop; each result is (time, page or exception)."""

    def __init__(self, server, threads=4):
        super().__init__(server, threads)
        self.results = []

    def _run(self, offset):
        with RecommendClient(self.server.grpc_url, timeout_s=10.0) as client:
            user = offset
            while not self._stop.is_set():
                try:
                    page = client.recommend(**_visit(user % 5000))
                    self.results.append((time.monotonic(), page))
                except Exception as error:  # noqa: BLE001
                    self.results.append((time.monotonic(), error))
                user += len(self._threads)


def _metric_total(server, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    total = 0.0
    for match in re.finditer(rf"^{name}\{{([^}}]*)\}} ([0-9.e+-]+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _errors(results) -> list:
    return [r for r in results if isinstance(r, Exception)]


def test_export_adds_a_version_without_touching_the_one_serving(server, control, experiment_repository):
    assert control.ready_versions(RANKER) == [1]
    assert (experiment_repository / RANKER / "2" / "model.onnx").is_file()
    pages = _drive(server, range(20))
    assert not _errors(pages)
    assert {page.cohort for page in pages} == {NO_COHORT}


def test_cohorts_are_stable_and_near_the_split_under_load(server, files, control, baseline):
    experiment = commands.start(files, control, treatment=2, share=0.3, salt="stable-test", guardrails=LENIENT)
    assert control.ready_versions(RANKER) == [1, 2]
    users = list(range(600))
    time.sleep(0.5)  # every instance re-reads the file within 0.25 s
    first = _drive(server, users, concurrency=8)
    second = _drive(server, users, concurrency=8)
    assert not _errors(first + second)
    cohorts = [page.cohort for page in first]
    assert commands.status(files, control)["rolled_back"] is None
    assert cohorts == [page.cohort for page in second], "a user changed cohort"
    assert cohorts == [assign_cohort(user, experiment) for user in users]
    share = cohorts.count(TREATMENT) / len(users)
    assert abs(share - 0.3) < 0.06, f"treatment share {share:.3f}; configured 0.3"  # 3.2 standard deviations
    treated = _metric_total(server, "marquee_route_requests_total", route=ROUTE, cohort=TREATMENT)
    assert treated >= 2 * cohorts.count(TREATMENT)
    # The treatment cohort is scored by version 2: its pages differ from version 1's.
    forced = _drive(server, users[:40], cohort=CONTROL)
    differs = sum(a.item_ids != b.item_ids for a, b in zip(first[:40], forced, strict=True) if a.cohort == TREATMENT)
    assert differs >= 0.8 * cohorts[:40].count(TREATMENT)


def test_malformed_experiment_file_keeps_the_previous_one(server, files, control, baseline):
    commands.start(files, control, treatment=2, share=0.5, salt="malformed-test", guardrails=LENIENT)
    time.sleep(0.5)
    before = [page.cohort for page in _drive(server, range(50))]
    good = files.experiments.read_text()
    files.experiments.write_text(good.replace("treatment_share: 0.5", "treatment_share: 7"))
    time.sleep(0.5)
    after = _drive(server, range(50))
    assert not _errors(after)
    assert [page.cohort for page in after] == before
    assert "treatment_share`=7" in log_tail(server.log_path, 400)
    files.experiments.write_text(good)


class _SaturatedVersion(_Background):
    """One ranker version kept busy with large batches: the shadow's calls then wait in
    its queue, as on a saturated server."""

    def __init__(self, server, version: int, threads: int = 3, rows: int = 1024):
        import tritonclient.grpc as grpcclient

        super().__init__(server, threads)
        self.version = version
        rng = np.random.default_rng(0)
        categorical = np.stack([rng.integers(0, 100, rows) for _ in range(6)], 1).astype(np.int64)
        dense = rng.normal(size=(rows, 6)).astype(np.float32)
        self.inputs = []
        for name, array, kind in (("categorical", categorical, "INT64"), ("dense", dense, "FP32")):
            tensor = grpcclient.InferInput(name, list(array.shape), kind)
            tensor.set_data_from_numpy(array)
            self.inputs.append(tensor)

    def _run(self, _):
        import tritonclient.grpc as grpcclient

        with grpcclient.InferenceServerClient(self.server.grpc_url) as client:
            while not self._stop.is_set():
                client.infer(RANKER, self.inputs, model_version=str(self.version))


def test_shadow_scoring_is_dropped_not_queued_when_saturated(server, files, control, baseline):
    commands.start(files, control, None, 0.0, "shadow-test", shadow=2, shadow_in_flight=1, shadow_log_share=1.0)
    time.sleep(0.5)
    outcomes = ("scored", "dropped", "failed")
    before = {o: _metric_total(server, "marquee_shadow_pages_total", outcome=o) for o in outcomes}
    with _SaturatedVersion(server, version=2):
        pages = _drive(server, range(300), concurrency=8)
    assert not _errors(pages)
    ranked = sum(not page.degraded for page in pages)
    time.sleep(1.0)  # shadow calls still in flight finish (or hit their own deadline)
    after = {o: _metric_total(server, "marquee_shadow_pages_total", outcome=o) for o in outcomes}
    delta = {o: after[o] - before[o] for o in after}
    assert delta["dropped"] > 0, f"saturated, yet nothing dropped: {delta}"
    assert delta["scored"] > 0, f"nothing shadow-scored: {delta}"
    # Every ranked page's shadow was scored, dropped or failed: none is left waiting.
    assert sum(delta.values()) == ranked, f"{delta} for {ranked} ranked pages"
    assert {page.cohort for page in pages} == {NO_COHORT}  # shadow only: nobody is treated
    assert _metric_total(server, "marquee_ranker_call_seconds_count", role="shadow", version="2") >= delta["scored"]
    overlap_count = _metric_total(server, "marquee_shadow_top_k_overlap_count", route=ROUTE)
    assert overlap_count >= delta["scored"]
    samples = (files.version_dir / "shadow_samples.jsonl").read_text().splitlines()
    assert len(samples) >= delta["scored"]


def test_guardrail_breach_returns_everyone_to_control(server, files, control, baseline):
    # A p99 budget no page can meet: the treatment must be rolled back automatically.
    commands.start(
        files, control, treatment=2, share=0.5, salt="guardrail-test", guardrails={"p99_ms": 0.1, "min_pages": 20}
    )
    time.sleep(0.5)
    _drive(server, range(300))
    time.sleep(1.5)  # the next check (at most every second per instance) trips it
    _drive(server, range(300, 400))
    report = commands.status(files, control)
    assert report["rolled_back"] and "p99" in report["rolled_back"], report
    pages = _drive(server, range(200))
    assert not _errors(pages)
    assert {page.cohort for page in pages} == {CONTROL}
    assert _metric_total(server, "marquee_experiment_rollbacks_total", route=ROUTE, guardrail="p99") >= 1


def test_rollback_under_load_has_zero_failed_requests(server, files, control, baseline):
    commands.start(files, control, treatment=2, share=0.5, salt="rollback-test", guardrails=LENIENT)
    time.sleep(0.5)
    with _Load(server) as load:
        time.sleep(2.0)
        started = time.monotonic()
        commands.rollback(files, control, "test: rollback under load", settle_s=SETTLE_S)
        finished = time.monotonic()
        time.sleep(2.0)
    results = load.results
    assert len(results) > 100
    assert not _errors([r for _, r in results]), _errors([r for _, r in results])[:3]
    assert not [page for _, page in results if page.degraded], "a page degraded during rollback"
    assert {page.cohort for at, page in results if at < started} == {CONTROL, TREATMENT}
    # Traffic left the treatment once the file was written, before the version was unloaded.
    assert {page.cohort for at, page in results if at > started + SETTLE_S} == {NO_COHORT}
    assert finished - started < SETTLE_S + 30
    assert control.ready_versions(RANKER) == [1]
    assert commands.status(files, control)["history"][-1]["action"] == "rollback"


def test_promote_then_promote_back_round_trip(server, files, control, baseline):
    commands.start(files, control, treatment=2, share=0.5, salt="promote-test", guardrails=LENIENT)
    with _Load(server) as load:
        time.sleep(1.0)
        commands.promote(files, control, settle_s=SETTLE_S)
        assert control.ready_versions(RANKER) == [2]
        assert files.read().control == 2
        commands.start(files, control, treatment=1, share=0.5, salt="promote-back", guardrails=LENIENT)
        commands.promote(files, control, settle_s=SETTLE_S)
        time.sleep(1.0)
    assert not _errors([r for _, r in load.results])
    assert control.ready_versions(RANKER) == [1]
    assert files.read().control == 1


def test_ab_readout_interval_contains_the_true_lift(server, files, control, baseline, experiment_repository):
    from export.recommend.catalogue import build_catalogue, user_histories
    from marquee.rollout.ab_readout import client_page_source, draw_visits, readout

    commands.start(files, control, treatment=2, share=0.5, salt="ab-readout-seed-7", guardrails=LENIENT)
    time.sleep(0.5)
    catalogue = build_catalogue(ROUTE_ITEMS)
    visits = draw_visits(catalogue, user_histories(catalogue), users=1200, seed=7)
    with RecommendClient(server.grpc_url, timeout_s=10.0) as client:
        report = readout(catalogue, visits, client_page_source(client), page_size=10, seed=7)
    lift = report["lift"]
    assert report["degraded_pages"] == 0
    assert lift["true_in_interval"], lift
    assert lift["ci95_high"] - lift["ci95_low"] < 0.05, f"interval too wide to mean anything: {lift}"
    # The weak candidate really is worse, and the readout can tell.
    assert lift["true"] < 0 and lift["ci95_high"] < 0, lift
    assert abs(report["cohorts"][TREATMENT]["users"] - 600) < 90
    assert parse_experiment(files.experiments.read_bytes()).running


def test_rollout_cli_start_status_rollback(server, files, control, baseline, monkeypatch):
    import json

    from typer.testing import CliRunner

    from marquee.cli import app

    monkeypatch.setenv("MARQUEE_ADMIN_KEY", server.admin_key.value)
    common = ["--url", server.http_url, "--route", ROUTE, "--repository", str(files.repository)]
    runner = CliRunner()
    started = runner.invoke(app, ["rollout", "start", "--shadow", "2", *common])
    assert started.exit_code == 0, started.output
    status = runner.invoke(app, ["rollout", "status", "--json", *common])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["experiment"]["shadow"] == 2 and report["serving_versions"] == [1, 2]
    rolled = runner.invoke(app, ["rollout", "rollback", "--settle-s", "0.5", "--reason", "cli test", *common])
    assert rolled.exit_code == 0, rolled.output
    assert control.ready_versions(RANKER) == [1]
    assert files.recent_history()[-1]["reason"] == "cli test"


def test_a_promote_survives_a_server_restart(server, files, control, baseline, experiment_repository, tmp_path):
    """The ranker's config on disk names version 1 (the spec's); after a promote to 2, a
    restarted server must serve 2, as the experiment file says, not fall back to 1."""
    from marquee import serving

    commands.start(files, control, treatment=2, share=0.5, salt="restart-test", guardrails=LENIENT)
    commands.promote(files, control, settle_s=SETTLE_S)
    assert control.ready_versions(RANKER) == [2]
    assert render.parse(
        (experiment_repository / RANKER / "config.pbtxt").read_text()
    ).version_policy.specific.versions == [1]

    restarted = serving.start_embedded(
        experiment_repository, free_ports(), tmp_path / "restarted.log", admin_key=server.admin_key
    )
    try:
        assert ModelControl(restarted.http_url, restarted.admin_key).ready_versions(RANKER) == [2]
        pages = _drive(restarted, range(40))
        assert not _errors(pages)
        degraded = [page.degraded_reason for page in pages if page.degraded]
        assert not degraded, f"pages degraded after the restart: {degraded[:3]}"
    finally:
        restarted.stop()
