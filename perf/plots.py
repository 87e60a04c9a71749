"""PNG plots for benchmark reports (matplotlib, optional: `pip install -e .[perf]`)."""

from __future__ import annotations

from pathlib import Path

STAGE_COLOURS = {"retrieve": "#4c72b0", "filter": "#55a868", "rank": "#c44e52", "rules": "#8172b2"}


def plot_recommend(report: dict, path: Path) -> Path | None:
    """Left: route p50/p99 against concurrency per catalogue size, with the budget.
    Right: median server time per stage, stacked, per size and concurrency."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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
    machine = report["machine"]
    figure.suptitle(f"{machine['cpu']}, {machine['cores']} cores, no GPU, {machine['date'][:10]}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
