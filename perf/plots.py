"""PNG plots for benchmark reports (matplotlib, optional: `pip install -e .[perf]`)."""

from __future__ import annotations

from pathlib import Path

from perf.machine import accelerator_label

STAGE_COLOURS = {"retrieve": "#4c72b0", "filter": "#55a868", "rank": "#c44e52", "rules": "#8172b2"}


def plot_recommend(report: dict, path: Path) -> Path | None:
    """Left: route p50/p99 against concurrency per catalogue size, with the budget.
    Right: median server time per stage, stacked, per size and concurrency."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, (latency, stages) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = ("#4c72b0", "#dd8452", "#55a868")
    for colour, (size, result) in zip(colours, report["sizes"].items(), strict=False):
        rows = result["route"]
        concurrency = [r["concurrency"] for r in rows]
        label = f"{int(size):,} titles"
        p99 = [r["perf_latency_p99_ms"] for r in rows]
        p50 = [r["perf_latency_p50_ms"] for r in rows]
        latency.plot(concurrency, p99, marker="o", color=colour, label=f"{label}, p99")
        latency.plot(concurrency, p50, marker=".", linestyle="--", color=colour, label=f"{label}, p50")
    latency.axhline(report["budget_ms"]["total"], color="grey", linestyle=":", label="p99 budget")
    latency.set(xlabel="concurrency (perf_analyzer, gRPC)", ylabel="route latency (ms)", title="recommend latency")
    latency.set_xticks(sorted({r["concurrency"] for res in report["sizes"].values() for r in res["route"]}))
    latency.legend(fontsize=8)

    labels, bottoms = [], None
    bars = {stage: [] for stage in STAGE_COLOURS}
    for size, result in report["sizes"].items():
        for row in result["route"]:
            short = f"{int(size) // 1_000_000}M" if int(size) >= 1_000_000 else f"{int(size) // 1000}k"
            labels.append(f"{short}\nc={row['concurrency']}")
            for stage in STAGE_COLOURS:
                bars[stage].append(row["stages"]["p50_ms"][stage])
    bottoms = [0.0] * len(labels)
    for stage, values in bars.items():
        stages.bar(labels, values, bottom=bottoms, color=STAGE_COLOURS[stage], label=stage)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    stages.set(ylabel="median server time (ms)", title="where a page spends its time")
    stages.legend(fontsize=8)
    figure.suptitle(_caption(report), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def save(figure, path: Path, title: str) -> Path:
    """Title, layout, write, close: how every benchmark plot ends."""
    plt = _pyplot()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def pyplot():
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is missing."""
    return _pyplot()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _caption(results: dict) -> str:
    m = results["machine"]
    return f"{m['cpu']}, {m['cores']} cores, GPU: {accelerator_label(m)}, {m['date'][:10]}"


def plot_latency_throughput(results: dict, path: Path) -> Path | None:
    """p99 (solid) and p50 (dashed) latency against throughput, one line per model,
    one point per concurrency: the curve Triton users read to pick an operating point."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for model, entry in results["models"].items():
        rows = entry["rows"]
        throughput = [r["perf_throughput"] for r in rows]
        (line,) = axis.plot(throughput, [r["perf_latency_p99"] / 1000 for r in rows], marker="o", label=f"{model} p99")
        axis.plot(
            throughput,
            [r["perf_latency_p50"] / 1000 for r in rows],
            marker=".",
            linestyle="--",
            color=line.get_color(),
            label=f"{model} p50",
        )
        for r in rows:
            axis.annotate(
                f"c={r['concurrency']:.0f}",
                (r["perf_throughput"], r["perf_latency_p99"] / 1000),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    axis.set(xlabel="throughput (inferences/s, log scale)", ylabel="latency (ms)", title="latency vs throughput")
    axis.set_xscale("log")  # a ranker's rows/s and a route's pages/s differ by orders of magnitude
    axis.legend(fontsize=7)
    figure.suptitle(_caption(results), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_server_split(results: dict, path: Path) -> Path | None:
    """Server-side time per request, stacked: queue, compute input, infer, output."""
    plt = _pyplot()
    if plt is None:
        return None
    parts = {
        "queue": "perf_server_queue_us",
        "compute input": "perf_server_compute_input_us",
        "compute infer": "perf_server_compute_infer_us",
        "compute output": "perf_server_compute_output_us",
    }
    labels = [f"{model}\nc={r['concurrency']:.0f}" for model, e in results["models"].items() for r in e["rows"]]
    rows = [r for e in results["models"].values() for r in e["rows"]]
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 4.5))
    bottom = [0.0] * len(rows)
    for name, key in parts.items():
        values = [r[key] / 1000 for r in rows]
        axis.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set(ylabel="server time per request (ms)", title="where the server spends a request")
    axis.tick_params(axis="x", labelsize=7)
    axis.legend(fontsize=7)
    figure.suptitle(_caption(results), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
