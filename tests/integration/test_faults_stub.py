"""A Python stub SIGKILLed mid-request, on a real tritonserver: the request in flight fails
fast with a server-side error (not a hang, not the caller's mistake), Triton starts a new
stub, and later requests succeed. The time from the kill to the first success is printed
and bounded; perf/reports/stub_kill.json records it with the machine and load
(`python -m perf.stub_kill`)."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from marquee.server import TritonServer, free_ports
from perf.fuzz.probe import ServerProcesses
from perf.stub_kill import SLEEPY, kill_stub_mid_request, write_sleepy_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sleepy_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("sleepy-repository")
    write_sleepy_model(repository)
    log_path = tmp_path_factory.mktemp("sleepy-log") / "tritonserver.log"
    server = TritonServer(repository, free_ports(), log_path=log_path, models=[SLEEPY], restart_dead_stubs=True)
    server.start(timeout=120)
    yield server
    server.stop()


def test_a_stub_killed_mid_request_fails_that_request_fast_and_comes_back(sleepy_server, request):
    result = kill_stub_mid_request(sleepy_server.grpc_url, sleepy_server.http_url, request_s=6.0)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(f"\nstub SIGKILL: {result}")
    assert sleepy_server.alive()
    # The request in flight: a server-side error, well before its 6 s of work would have ended.
    assert result.in_flight_status in ("StatusCode.INTERNAL", "StatusCode.UNAVAILABLE"), result
    assert result.in_flight_failed_after_s < 3.0, result
    assert "stub" in result.in_flight_message.lower(), result
    # Triton started a new stub and the model answers again, from a new process.
    assert result.new_pid != result.killed_pid and result.recovery_s < 30.0, result
    assert ServerProcesses(sleepy_server.process.pid).stubs() >= {result.new_pid}


def test_requests_after_the_recovery_all_succeed(sleepy_server):
    with grpcclient.InferenceServerClient(sleepy_server.grpc_url) as client:
        before = _pid(client)
        os.kill(before, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            try:
                after = _pid(client)
                break
            except InferenceServerException:
                assert time.monotonic() < deadline, "the model never came back"
                time.sleep(0.1)
        with ThreadPoolExecutor(4) as pool:
            pids = list(pool.map(lambda _: _pid(client), range(20)))
    assert after != before and set(pids) == {after}


def _pid(client) -> int:
    tensor = grpcclient.InferInput("seconds", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 1), np.float32))
    return int(client.infer(SLEEPY, [tensor], client_timeout=10).as_numpy("pid")[0, 0])


def test_an_unload_and_a_reload_are_not_taken_for_a_death(sleepy_server):
    """Stubs stopped by Triton are reaped; only a stub that died on its own stays a zombie."""
    watchdog, headers = sleepy_server.watchdog, sleepy_server.admin_key.grpc_headers()
    before = dict(watchdog.reloads)
    with grpcclient.InferenceServerClient(sleepy_server.grpc_url) as client:
        client.unload_model(SLEEPY, headers=headers)
        _wait(lambda: not client.is_model_ready(SLEEPY))
        time.sleep(4 * watchdog.interval_s)
        assert not client.is_model_ready(SLEEPY), "the watchdog loaded a model the operator unloaded"
        client.load_model(SLEEPY, headers=headers)
        _wait(lambda: client.is_model_ready(SLEEPY))
        old = _pid(client)
        config = client.get_model_config(SLEEPY, as_json=True)["config"]
        config.setdefault("parameters", {})["reason"] = {"string_value": "an operator's reload"}
        client.load_model(SLEEPY, headers=headers, config=json.dumps(config))
        time.sleep(4 * watchdog.interval_s)
        assert _pid(client) != old  # a real reload: new stub, old one stopped by Triton
    assert dict(watchdog.reloads) == before


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
