"""SIGKILL a Python stub mid-request and time Triton's recovery.

    .venv/bin/python -m perf.stub_kill [--trials 10]

A one-model repository: `sleepy_stub`, a Python model that sleeps as long as its input
says and answers its own PID (the stub's). Each trial sends a long request, kills that
stub with SIGKILL while it sleeps, and records how fast the request in flight failed and
with what, and how long until a request succeeded again (from a new stub). Writes
perf/reports/stub_kill.json. The default-run test (tests/integration/test_faults_stub.py)
runs one trial.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from marquee import render
from marquee.specs import DataType, ModelSpec, TensorSpec
from marquee.specs.ranker import RANKER_FP32

SLEEPY = "sleepy_stub"
REPORT = Path(__file__).resolve().parent / "reports" / "stub_kill.json"

SLEEPY_SPEC = replace(
    RANKER_FP32,
    name=SLEEPY,
    family="test",
    backend="python",
    artifact="model.py",
    max_batch_size=1,
    inputs=(TensorSpec("seconds", DataType.FP32, (1,)),),
    outputs=(TensorSpec("pid", DataType.INT64, (1,)),),
    dynamic_batching=None,
    parameters={},
    warmup_batch_sizes=(),
)

SLEEPY_CODE = """
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            seconds = float(pb_utils.get_input_tensor_by_name(request, "seconds").as_numpy().reshape(-1)[0])
            time.sleep(seconds)
            pid = pb_utils.Tensor("pid", np.array([[os.getpid()]], np.int64))
            responses.append(pb_utils.InferenceResponse([pid]))
        return responses
"""


def write_sleepy_model(repository: Path) -> None:
    spec: ModelSpec = SLEEPY_SPEC
    render.write([spec], repository)
    (repository / SLEEPY / "1").mkdir(parents=True, exist_ok=True)
    (repository / SLEEPY / "1" / "model.py").write_text(SLEEPY_CODE)


@dataclass
class StubKill:
    killed_pid: int
    new_pid: int
    in_flight_status: str  # the gRPC status the request in flight ended with ("ok" if it succeeded)
    in_flight_message: str
    in_flight_failed_after_s: float  # from the kill to the request's end
    recovery_s: float  # from the kill to the first request answered again

    def __str__(self) -> str:
        return (
            f"in flight: {self.in_flight_status} after {self.in_flight_failed_after_s:.2f} s "
            f"({self.in_flight_message[:120]!r}); recovered in {self.recovery_s:.2f} s "
            f"(stub {self.killed_pid} -> {self.new_pid})"
        )


def _ask(client, seconds: float, timeout_s: float = 60.0) -> int:
    tensor = grpcclient.InferInput("seconds", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.full((1, 1), seconds, np.float32))
    return int(client.infer(SLEEPY, [tensor], client_timeout=timeout_s).as_numpy("pid")[0, 0])


def kill_stub_mid_request(grpc_url: str, http_url: str, request_s: float = 6.0) -> StubKill:
    client = grpcclient.InferenceServerClient(grpc_url)
    try:
        pid = _ask(client, 0.0)
        ended: dict = {}

        def in_flight():
            try:
                _ask(client, request_s)
                ended["status"], ended["message"] = "ok", ""
            except InferenceServerException as error:
                ended["status"], ended["message"] = str(error.status()), error.message() or ""
            ended["at"] = time.monotonic()

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.5)  # the stub is asleep inside execute()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        thread.join(timeout=request_s + 30)
        while True:
            try:
                new_pid = _ask(client, 0.0, timeout_s=10)
                break
            except InferenceServerException:
                if time.monotonic() - killed_at > 60:
                    raise
                time.sleep(0.05)
        recovered_at = time.monotonic()
    finally:
        client.close()
    return StubKill(
        killed_pid=pid,
        new_pid=new_pid,
        in_flight_status=ended.get("status", "hung"),
        in_flight_message=ended.get("message", ""),
        in_flight_failed_after_s=round(ended.get("at", float("inf")) - killed_at, 3),
        recovery_s=round(recovered_at - killed_at, 3),
    )


def main() -> None:
    import tempfile

    from marquee.server import TritonServer, free_ports
    from perf.machine import report_header

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        write_sleepy_model(Path(tmp))
        with TritonServer(Path(tmp), free_ports(), models=[SLEEPY], restart_dead_stubs=True) as server:
            trials = [kill_stub_mid_request(server.grpc_url, server.http_url) for _ in range(args.trials)]
    for trial in trials:
        print(trial)
    recovery = [t.recovery_s for t in trials]
    failed_after = [t.in_flight_failed_after_s for t in trials]
    report = {
        **report_header("SIGKILL a Python stub mid-request", load_before),
        "trials": [asdict(t) for t in trials],
        "in_flight_statuses": sorted({t.in_flight_status for t in trials}),
        "in_flight_failed_after_s": {"median": statistics.median(failed_after), "max": max(failed_after)},
        "recovery_s": {"median": statistics.median(recovery), "max": max(recovery)},
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"recovery median {report['recovery_s']['median']:.2f} s, max {report['recovery_s']['max']:.2f} s")


if __name__ == "__main__":
    main()
