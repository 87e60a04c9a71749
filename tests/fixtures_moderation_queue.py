"""Session fixtures for the moderation queue area (a pytest plugin registered in tests/conftest.py).

The worker tests need a real tritonserver answering `moderate_text` per the route
contract, with failures they can switch on and off. The real route is built elsewhere and
loads real models; these tests are about the queue, so the server here serves a small
deterministic stand-in under the route's name, its config rendered from the route's own spec
(marquee/specs/moderation_text.py).

Like the route, it answers decision "error" for bad texts (empty, whitespace-only, longer
than MAX_CHARS, invalid UTF-8) with `error_kind` "input" in the audit, and decides the
others by `expected_decision`. Its behaviour is steered through files in a control directory:
- `fail` exists: a request holding a text with FAIL in it fails as a whole (INTERNAL);
- `refuse` exists: a request holding a text with REFUSE in it is refused as a whole as the
  caller's mistake (INVALID_ARG), as the route refuses a malformed request;
- `flaky` exists: texts with FLAKY in them get decision "error" with `error_kind` "model"
  (as when the route's classifier runs past its deadline);
- `legacy` exists: error audits carry no `error_kind`, as from a route older than error kinds;
- `hold` exists: a request holding a text with HOLD in it waits until `hold` is deleted
  (writing `holding` first), so a test can kill a worker while it is mid-batch.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import pytest

from marquee import render
from marquee.server import TritonServer, free_ports
from marquee.specs.base import InstanceGroup
from marquee.specs.moderation_text import MAX_CHARS, MODERATE_TEXT

SWITCHES = ("fail", "refuse", "flaky", "legacy", "hold", "holding")

STAND_IN_MODEL = """
import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"])["parameters"]
        self.control = parameters["control_dir"]["string_value"]
        self.delay_s = float(parameters["delay_s"]["string_value"])
        self.max_chars = int(parameters["max_chars"]["string_value"])

    def execute(self, requests):
        return [self._answer(request) for request in requests]

    def _flag(self, name):
        return os.path.exists(os.path.join(self.control, name))

    def _decode(self, index, raw):
        # (text, None), or (None, why the text is unusable) by the route's rules
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, f"text[{index}] is not valid UTF-8"
        if not text:
            return None, f"text[{index}] is empty; allowed: 1 to {self.max_chars} characters"
        if not text.strip():
            return None, f"text[{index}] is only whitespace"
        if len(text) > self.max_chars:
            return None, f"text[{index}] has {len(text)} characters; allowed: 1 to {self.max_chars}"
        return text, None

    def _error(self, message, kind):
        audit = {"decision": "error", "error": message, "error_kind": kind}
        if self._flag("legacy"):
            del audit["error_kind"]
        return json.dumps(audit)

    def _answer(self, request):
        raw = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
        decoded = [self._decode(i, t) for i, t in enumerate(raw)]
        texts = [text or "" for text, _ in decoded]
        time.sleep(self.delay_s)
        if self._flag("fail") and any("FAIL" in t for t in texts):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError("stand-in classifier crashed on a FAIL text"))
        if self._flag("refuse") and any("REFUSE" in t for t in texts):
            message = "input `text` holds a REFUSE text; allowed: texts without REFUSE"
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))
        if self._flag("hold") and any("HOLD" in t for t in texts):
            open(os.path.join(self.control, "holding"), "w").close()
            deadline = time.monotonic() + 60
            while self._flag("hold") and time.monotonic() < deadline:
                time.sleep(0.02)
        decisions, audits = [], []
        for i, (text, problem) in enumerate(decoded):
            if problem:
                decisions.append("error")
                audits.append(self._error(problem, "input"))
                continue
            if self._flag("flaky") and "FLAKY" in text:
                decisions.append("error")
                audits.append(self._error("stand-in classifier ran past its 10 ms deadline", "model"))
                continue
            scores = {"profanity": 0.97 if "darn" in text else 0.01, "insult": 0.6 if "hmm" in text else 0.02}
            reasons = [f"{name} {score:.2f} >= 0.5" for name, score in scores.items() if score >= 0.5]
            decision = "block" if scores["profanity"] >= 0.9 else "review" if reasons else "allow"
            decisions.append(decision)
            audits.append(json.dumps({
                "decision": decision, "scores": scores, "thresholds": {}, "reasons": reasons,
                "stages": [{"model": "stand_in", "version": "1", "scores": scores, "ms": self.delay_s * 1000}],
                "policy_version": "stand-in", "policy_sha256": "0" * 64,
            }))
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("decision", np.array(decisions, dtype=np.object_)),
            pb_utils.Tensor("audit", np.array(audits, dtype=np.object_)),
        ])
"""


def expected_decision(text: str) -> str:
    """The stand-in's rule, restated for the tests' checks."""
    return "block" if "darn" in text else "review" if "hmm" in text else "allow"


def write_stand_in_route(repository: Path, control_dir: Path, delay_s: float = 0.02) -> None:
    spec = dataclasses.replace(
        MODERATE_TEXT,
        parameters={"control_dir": str(control_dir), "delay_s": str(delay_s), "max_chars": str(MAX_CHARS)},
        instance_groups=(InstanceGroup(count=1),),
        stage_budgets_ms={},
        composes=(),  # the stand-in calls no other model
    )
    render.write([spec], repository)
    version_dir = repository / spec.name / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "model.py").write_text(STAND_IN_MODEL)


@dataclasses.dataclass
class StandInRoute:
    server: TritonServer
    control_dir: Path

    def switch(self, flag: str, on: bool) -> None:
        path = self.control_dir / flag
        if on:
            path.touch()
        else:
            path.unlink(missing_ok=True)

    def wait_for(self, flag: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.control_dir / flag).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stand-in never wrote {flag} within {timeout}s")
            time.sleep(0.01)


def start_stand_in(tmp: Path) -> StandInRoute:
    control_dir = tmp / "control"
    control_dir.mkdir(parents=True, exist_ok=True)
    write_stand_in_route(tmp / "repository", control_dir)
    server = TritonServer(tmp / "repository", free_ports(), log_path=tmp / "tritonserver.log").start(timeout=120)
    return StandInRoute(server, control_dir)


@pytest.fixture(scope="session")
def stand_in_route(tmp_path_factory):
    """A real tritonserver serving the stand-in `moderate_text`, shared by the session."""
    route = start_stand_in(tmp_path_factory.mktemp("moderation-stand-in"))
    yield route
    route.server.stop()


@pytest.fixture
def stand_in_all_switches_off(stand_in_route):
    """The session's stand-in with every failure switch off before and after the test."""
    for flag in SWITCHES:
        stand_in_route.switch(flag, False)
    yield stand_in_route
    for flag in SWITCHES:
        stand_in_route.switch(flag, False)


def worker_command(store: Path | str, grpc_url: str, name: str, *extra: str) -> list[str]:
    """A worker as its own process, through the moderation CLI (no dependency on marquee/cli.py)."""
    return [
        sys.executable,
        "-m",
        "marquee.moderation.cli",
        "moderation",
        "worker",
        "--store",
        str(store),
        "--url",
        grpc_url,
        "--name",
        name,
        *extra,
    ]


REDIS_SKIP_REASON = (
    "no redis-server on PATH (Debian package `redis-server`, >= 6.2 for XAUTOCLAIM; valkey-server works too, "
    "or point MARQUEE_REDIS_SERVER at a binary): the Redis Streams queue tests need a real server"
)


def redis_server_binary() -> str | None:
    import os
    import shutil

    return os.environ.get("MARQUEE_REDIS_SERVER") or shutil.which("redis-server") or shutil.which("valkey-server")


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory):
    """A throwaway redis-server on a free port, without persistence; skips when none is installed."""
    import socket
    import subprocess

    binary = redis_server_binary()
    if binary is None:
        pytest.skip(REDIS_SKIP_REASON)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=(workdir / "redis.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{binary} did not start; log:\n{(workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
