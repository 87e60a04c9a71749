"""Send fuzz cases to a real tritonserver and check the invariants after each one.

Invariants (`check`):
- the answer is a result, or a refusal as the caller's mistake (gRPC INVALID_ARGUMENT,
  HTTP 400) whose message names the model or one of its inputs;
- the server process is alive and ready;
- no Python stub died: the set of `triton_python_backend_stub` processes under the server
  is the one seen before the case (a stub Triton restarts has a new PID);
- memory stays bounded: resident memory of the server and its stubs together
  (`ServerProcesses.rss_bytes`) is reported, and callers bound its growth.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from marquee.server.process import http_ready
from marquee.server.stub_watchdog import stub_processes
from marquee.specs import ModelSpec
from perf.fuzz.cases import Case

REFUSED = {"grpc": "StatusCode.INVALID_ARGUMENT", "http": "400"}


@dataclass
class Outcome:
    status: str  # "ok", "refused", "client" (the client library would not send it), or the server's code
    message: str = ""
    seconds: float = 0.0


class InvariantBroken(AssertionError):
    pass


# Triton 2.51 never answers a request to a batched model whose shape has batch 0 and no
# bytes ([0, 0]): it does not reach the model's execute() at all, so no backend can
# refuse it (found by this fuzzer; the typed clients never send a batch of 0). Such a case
# gets a short deadline and is counted as UNANSWERED_BATCH_0, not as a broken invariant.
UNANSWERED_BATCH_0 = "unanswered (Triton 2.51: batch 0)"
BATCH_0_DEADLINE_S = 3.0


def declares_empty_batch(case: Case) -> bool:
    """A tensor of batch 0 with no bytes: shape [0, 0], sent as such or declared over an empty array."""
    return any(t.shape and t.shape[0] == 0 and t.array.size == 0 for t in case.tensors)


def send(case: Case, grpc_url: str, http_url: str, timeout_s: float = 120.0) -> Outcome:
    if declares_empty_batch(case):
        timeout_s = BATCH_0_DEADLINE_S
    module = grpcclient if case.protocol == "grpc" else httpclient
    started = time.monotonic()
    try:
        inputs = []
        for tensor in case.tensors:
            wire = module.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
            if case.protocol == "http":
                wire.set_data_from_numpy(tensor.array, binary_data=True)
            else:
                wire.set_data_from_numpy(tensor.array)
            if tensor.declared_shape is not None:
                wire.set_shape(tensor.declared_shape)
            inputs.append(wire)
    except (InferenceServerException, ValueError, TypeError, OverflowError) as refused:
        return Outcome("client", str(refused), time.monotonic() - started)
    if case.protocol == "grpc":
        client = grpcclient.InferenceServerClient(grpc_url)
        call = dict(client_timeout=timeout_s)
    else:
        client = httpclient.InferenceServerClient(http_url, network_timeout=timeout_s, connection_timeout=timeout_s)
        call = {}
    try:
        client.infer(case.model, inputs, **call)
        return Outcome("ok", "", time.monotonic() - started)
    except InferenceServerException as error:
        status = str(error.status())
        kind = "refused" if status == REFUSED[case.protocol] else status
        if declares_empty_batch(case) and status in ("StatusCode.DEADLINE_EXCEEDED", "None"):
            kind = UNANSWERED_BATCH_0
        return Outcome(kind, error.message() or "", time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - the HTTP client's socket timeout is not an InferenceServerException
        kind = UNANSWERED_BATCH_0 if declares_empty_batch(case) else f"no answer ({type(error).__name__})"
        return Outcome(kind, str(error), time.monotonic() - started)
    finally:
        client.close()


def names_the_problem(spec: ModelSpec, case: Case, message: str) -> bool:
    names = {spec.name, *(t.name for t in spec.inputs), *(t.name for t in case.tensors)}
    return any(name and name in message for name in names)


class ServerProcesses:
    """The tritonserver process and its Python stubs, read from /proc."""

    def __init__(self, pid: int):
        self.pid = pid

    def stubs(self) -> set[int]:
        """PIDs of the live stubs (a dead one stays a zombie: Triton 2.51 never reaps it)."""
        return {pid for pid, stub in stub_processes(self.pid).items() if stub.alive}

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """`field` of /proc/PID/status summed over server and stubs. VmRSS counts a shared
        memory region once per process that maps it (the server and every stub map the
        Python backend's regions); RssAnon is each process's private memory alone."""
        total = 0
        for pid in [self.pid, *self.stubs()]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            line = next((line for line in status.splitlines() if line.startswith(f"{field}:")), f"{field}: 0 kB")
            total += int(line.split()[1]) * 1024
        return total

    def alive(self) -> bool:
        return Path(f"/proc/{self.pid}").exists()


@dataclass
class FuzzTally:
    """Cases per model and outcome, and the largest resident memory seen."""

    cases: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    peak_rss: int = 0
    slowest: dict[str, float] = field(default_factory=dict)

    def add(self, case: Case, outcome: Outcome) -> None:
        self.cases[case.model] += 1
        self.outcomes[(case.model, outcome.status)] += 1
        self.kinds[(case.model, case.kind)] += 1
        self.slowest[case.model] = max(self.slowest.get(case.model, 0.0), outcome.seconds)

    def table(self) -> str:
        lines = [f"{'model':28} {'cases':>5}  outcomes"]
        for model in sorted(self.cases):
            outcomes = ", ".join(f"{s} {n}" for (m, s), n in sorted(self.outcomes.items()) if m == model)
            lines.append(f"{model:28} {self.cases[model]:5d}  {outcomes}  (slowest {self.slowest[model]:.2f} s)")
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {
            model: {
                "cases": self.cases[model],
                "outcomes": {s: n for (m, s), n in self.outcomes.items() if m == model},
                "kinds": {k: n for (m, k), n in self.kinds.items() if m == model},
                "slowest_s": round(self.slowest[model], 3),
            }
            for model in sorted(self.cases)
        }


class Fuzzer:
    """Runs cases against one server and checks the invariants after each."""

    def __init__(self, grpc_url: str, http_url: str, pid: int, log_path: Path | None = None):
        self.grpc_url, self.http_url = grpc_url, http_url
        self.processes = ServerProcesses(pid)
        self.log_path = log_path
        self.tally = FuzzTally()
        self.stubs = self.processes.stubs()
        self.baseline_rss = self.processes.rss_bytes()

    def run(self, spec: ModelSpec, case: Case) -> Outcome:
        outcome = send(case, self.grpc_url, self.http_url)
        self.tally.add(case, outcome)
        self.check(spec, case, outcome)
        return outcome

    def check(self, spec: ModelSpec, case: Case, outcome: Outcome) -> None:
        problems = []
        if outcome.status not in ("ok", "refused", "client", UNANSWERED_BATCH_0):
            problems.append(f"answered {outcome.status}: {outcome.message[:500]}")
        if outcome.status == "refused" and not names_the_problem(spec, case, outcome.message):
            problems.append(f"refusal names neither the model nor an input: {outcome.message[:300]!r}")
        if not self.processes.alive() or not http_ready(self.http_url, timeout=10):
            problems.append("the server is not live and ready after the case")
        stubs = self.processes.stubs()
        if not self.stubs <= stubs:
            problems.append(f"Python stub(s) died: {sorted(self.stubs - stubs)}")
        self.stubs = stubs
        self.tally.peak_rss = max(self.tally.peak_rss, self.processes.rss_bytes())
        if problems:
            raise InvariantBroken(f"{case.describe()}\n  " + "\n  ".join(problems))

    def rss_growth(self) -> int:
        return self.processes.rss_bytes() - self.baseline_rss
