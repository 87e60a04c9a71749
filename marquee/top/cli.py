"""`marquee top`: a live terminal view of any Triton running Marquee, read from its /metrics.

    marquee top                                            # http://127.0.0.1:8002/metrics, every 2 s
    marquee top --metrics-url http://triton:8002/metrics --queue-metrics http://127.0.0.1:9108/metrics
    marquee top --once --interval 1                        # one window, printed; for scripts

Every number is over the refresh window: the difference of two scrapes `--interval`
apart (see marquee/top/rates.py). No Prometheus is needed.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer
from rich.console import Console

from marquee.console import console
from marquee.top import view
from marquee.top.scrape import TopError
from marquee.top.snapshot import Scraper, take_snapshot

DEFAULT_METRICS_URL = "http://127.0.0.1:8002/metrics"
# `--once` into a pipe or a file: wide enough for every column (COLUMNS overrides).
PIPE_WIDTH = 180


def top_command(
    metrics_url: Annotated[
        str, typer.Option("--metrics-url", help="Triton's metrics endpoint (its metrics port, default 8002).")
    ] = DEFAULT_METRICS_URL,
    queue_metrics: Annotated[
        str | None,
        typer.Option(
            "--queue-metrics",
            help="The moderation queue's metrics endpoint (`marquee moderation metrics`, "
            "or a worker's --metrics-port), for a second table.",
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.2, max=3600, help="Seconds between scrapes: the window every rate is over.")
    ] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one window (two scrapes --interval apart) and exit.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each scrape.")] = 5.0,
) -> None:
    """Routes x surfaces, live: requests/s, p50/p99, degraded %, errors, compute-seconds, missing models."""
    try:
        if once:
            _once(metrics_url, queue_metrics, interval, timeout)
        else:
            _live(metrics_url, queue_metrics, interval, timeout)
    except TopError as error:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(1) from None


def _once(metrics_url: str, queue_url: str | None, interval: float, timeout: float) -> None:
    snapshot = take_snapshot(metrics_url, queue_url, interval, timeout)
    out = console
    if not console.is_terminal and "COLUMNS" not in os.environ:
        out = Console(width=PIPE_WIDTH)
    out.print(view.render(snapshot))


def _live(metrics_url: str, queue_url: str | None, interval: float, timeout: float) -> None:
    from rich.live import Live

    scraper = Scraper(metrics_url, queue_url, timeout)
    scraper.tick()  # a wrong URL fails here, before the screen is taken over
    last = None
    try:
        with Live(view.waiting(metrics_url, interval), console=console, auto_refresh=False) as live:
            deadline = time.monotonic() + interval
            while True:
                time.sleep(max(0.0, deadline - time.monotonic()))
                deadline = time.monotonic() + interval
                try:
                    snapshot = scraper.tick()
                except TopError as error:
                    live.update(view.failure(str(error), interval, last), refresh=True)
                    continue
                if snapshot is None:  # the scrape after a failed one starts a new window
                    live.update(view.failure("new window after a failed scrape…", interval, last), refresh=True)
                    continue
                last = view.render(snapshot)
                live.update(last, refresh=True)
    except KeyboardInterrupt:
        pass
