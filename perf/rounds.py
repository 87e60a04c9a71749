"""Conditions measured in alternating rounds, for the side-by-side benchmarks.

Why alternate: on a shared host, slow drift (other jobs, thermal) would otherwise land on
whichever condition ran last. Round by round, every condition sees the same drift. The
report is rewritten after every measurement, so an interrupted run keeps what it has.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console


def run_alternating(
    conditions: Sequence,
    rounds: int,
    seconds: int,
    measure: Callable[[object, Path], dict],
    combine: Callable[[list[dict]], dict],
    report: dict,
    out: Path,
    console: Console,
) -> dict:
    """`measure(condition, workdir)` once per condition and round; `report["conditions"]`
    holds `combine` of each condition's results. Returns the report."""
    runs: dict[str, list[dict]] = {c.name: [] for c in conditions}
    with tempfile.TemporaryDirectory(prefix=f"marquee-{report.get('benchmark', 'bench')}-") as tmp:
        for round_number in range(rounds):
            for condition in conditions:
                workdir = Path(tmp) / f"round{round_number}"
                with console.status(f"round {round_number + 1}/{rounds}, {condition.name}: {seconds} s ..."):
                    result = measure(condition, workdir)
                result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                runs[condition.name].append(result)
                report["conditions"] = {name: combine(results) for name, results in runs.items() if results}
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(report, indent=2) + "\n")
    return report
