"""`marquee perf run` and `marquee perf compare`: perf_analyzer sweeps over served models,
written as JSON, a Markdown report and PNG plots, and the difference between two runs."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from perf.inputs import input_args
from perf.machine import accelerator_label, machine_info
from perf.perf_analyzer import PerfAnalyzer

RESULTS = "results.json"
COMPARED = ("perf_throughput", "perf_latency_p50", "perf_latency_p99")


def sweep(
    analyzer: PerfAnalyzer,
    grpc_url: str,
    repository: Path,
    models: list[str],
    concurrency: str,
    batch_size: int,
    interval_ms: int = 3000,
) -> dict:
    """One perf_analyzer run per model over `concurrency` (perf_analyzer's `start:end:step`)."""
    results: dict = {"machine": machine_info(), "concurrency": concurrency, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            batch = 1 if model.startswith("recommend") else batch_size  # the route is unbatched
            measured = analyzer.measure(
                model,
                grpc_url,
                batch_size=batch,
                concurrency=concurrency,
                interval_ms=interval_ms,
                extra=tuple(input_args(model, repository, Path(tmp))),
            )
            rows = [asdict(row) | {"server_compute_us": row.server_compute_us} for row in measured]
            results["models"][model] = {"batch_size": batch, "rows": rows}
    return results


def write_report(results: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / RESULTS]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    written.append(out_dir / "report.md")
    written[1].write_text(markdown(results))
    from perf.plots import plot_latency_throughput, plot_server_split

    for plot in (
        plot_latency_throughput(results, out_dir / "latency_throughput.png"),
        plot_server_split(results, out_dir / "server_split.png"),
    ):
        if plot:
            written.append(plot)
    return written


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# perf run",
        "",
        f"{m['cpu']}, {m['cores']} cores, GPU: {accelerator_label(m)}, {m['date']}, tritonserver {m['tritonserver']}",
        "",
        "| model | batch | concurrency | infer/s | p50 ms | p99 ms | queue ms | compute ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, entry in results["models"].items():
        for row in entry["rows"]:
            lines.append(
                f"| {model} | {entry['batch_size']} | {row['concurrency']:.0f} | {row['perf_throughput']:,.0f} "
                f"| {row['perf_latency_p50'] / 1000:.2f} | {row['perf_latency_p99'] / 1000:.2f} "
                f"| {row['perf_server_queue_us'] / 1000:.2f} | {row['server_compute_us'] / 1000:.2f} |"
            )
    lines += ["", "![latency vs throughput](latency_throughput.png)", "", "![server split](server_split.png)", ""]
    return "\n".join(lines)


def load(path: Path) -> dict:
    path = Path(path)
    path = path / RESULTS if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no perf results here (expected a folder from `marquee perf run`)")
    return json.loads(path.read_text())


def compare(before: dict, after: dict) -> list[dict]:
    """Per model and concurrency present in both runs: each metric, before, after, change."""
    rows = []
    for model, entry in after["models"].items():
        if model not in before["models"]:
            continue
        old_rows = {r["concurrency"]: r for r in before["models"][model]["rows"]}
        for row in entry["rows"]:
            old = old_rows.get(row["concurrency"])
            if old is None:
                continue
            for metric in COMPARED:
                change = (row[metric] - old[metric]) / old[metric] if old[metric] else float("nan")
                better = change > 0 if metric == "perf_throughput" else change < 0
                rows.append(
                    {
                        "model": model,
                        "concurrency": row["concurrency"],
                        "metric": metric,
                        "before": old[metric],
                        "after": row[metric],
                        "change": change,
                        "better": better,
                    }
                )
    return rows
