"""The long fuzz profile: hostile requests to every exported model, from the specs.

    .venv/bin/python -m perf.fuzz_long [--examples 200] [--models recommend,moderate_text] [--seed 1]

Starts the embedded server on model_repository/ with every exported model (explicit
model control), then, per model, lets hypothesis draw `--examples` cases
(perf/fuzz/cases.py) over gRPC and HTTP and checks the invariants after each
(perf/fuzz/probe.py). A broken invariant is recorded and the run goes on (the server is
restarted if it died). Writes perf/reports/fuzz.json: cases per model and outcome,
every broken invariant, resident memory before/peak/after, machine and load.
The default-run tests run the same generators with fewer examples
(tests/integration/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.serving import exported_models
from marquee.specs import CATALOGUE
from perf.fuzz.cases import requests_for
from perf.fuzz.probe import Fuzzer, InvariantBroken
from perf.machine import report_header

REPORT = Path(__file__).resolve().parent / "reports" / "fuzz.json"


def fuzz_model(fuzzer: Fuzzer, spec, examples: int, seed: int | None, broken: list[str]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=requests_for(spec))
    def one(case):
        try:
            fuzzer.run(spec, case)
        except InvariantBroken as error:
            broken.append(str(error))
            print(f"BROKEN: {error}", flush=True)

    if seed is not None:
        one = __import__("hypothesis").seed(seed)(one)
    one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="cases per model")
    parser.add_argument("--models", default="", help="comma-separated; default: every exported model with a spec")
    parser.add_argument("--seed", type=int, default=None, help="default: hypothesis's derandomized sequence")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    repository = model_repository()
    ready, _ = exported_models(repository)
    models = [m for m in (args.models.split(",") if args.models else ready) if m in CATALOGUE and m in ready]
    load_before = os.getloadavg()
    started = time.monotonic()
    server = TritonServer(repository, free_ports(), models=ready).start(timeout=300)
    fuzzer = Fuzzer(server.grpc_url, server.http_url, server.process.pid, server.log_path)
    rss_before = fuzzer.processes.rss_bytes()
    private_before = fuzzer.processes.rss_bytes("RssAnon")
    broken: list[str] = []
    try:
        for model in models:
            print(f"fuzzing {model} ({args.examples} cases)", flush=True)
            fuzz_model(fuzzer, CATALOGUE[model], args.examples, args.seed, broken)
            if not server.alive():
                server = TritonServer(repository, free_ports(), models=ready).start(timeout=300)
                fuzzer = Fuzzer(server.grpc_url, server.http_url, server.process.pid, server.log_path)
        rss_after = fuzzer.processes.rss_bytes()
        private_after = fuzzer.processes.rss_bytes("RssAnon")
    finally:
        server.stop()
    print(fuzzer.tally.table())
    report = {
        **report_header("fuzz (long profile)", load_before),
        "seconds": round(time.monotonic() - started, 1),
        "examples_per_model": args.examples,
        "seed": args.seed,
        "models": fuzzer.tally.as_json(),
        "total_cases": sum(fuzzer.tally.cases.values()),
        "broken_invariants": broken,
        "rss_bytes": {"before": rss_before, "peak": fuzzer.tally.peak_rss, "after": rss_after},
        # Private memory only (RssAnon): VmRSS above counts shared regions once per process.
        "private_bytes": {"before": private_before, "after": private_after},
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['total_cases']} cases, {len(broken)} broken invariant(s); report {args.report}")


if __name__ == "__main__":
    main()
