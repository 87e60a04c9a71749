"""`marquee top` against the session's real tritonserver: pages sent from a background
thread during the window show up in the recommend/home row with a rate and a p99."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clients import RecommendClient
from marquee.top.scrape import TopError
from marquee.top.snapshot import take_snapshot

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def pages(grpc_url: str, surface: str, model: str = "recommend"):
    """Sends pages one after another from a thread until the block ends; yields a list
    whose length is the number of answers so far, and re-raises what the thread hit."""
    stop, answered, failures = threading.Event(), [], []

    def send() -> None:
        try:
            with RecommendClient(grpc_url, timeout_s=5.0, surface=surface, model=model) as client:
                user = 0
                while not stop.is_set():
                    answered.append(client.recommend(user % 500, 2, [10, 11], n=10))
                    user += 1
        except Exception as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    thread = threading.Thread(target=send, name=f"pages-{surface}", daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(timeout=30)
    if failures:
        raise failures[0]


def test_snapshot_shows_the_home_rows_rate_and_p99(triton):
    # The route whose retrieval model was never deployed, called once: it has then
    # checked its composed models whichever way it checks them.
    with RecommendClient(triton.grpc_url, timeout_s=5.0, model="recommend_missing_retrieval") as client:
        assert client.recommend(1, 2, [], n=5).degraded
    with pages(triton.grpc_url, "home") as answered:
        snapshot = take_snapshot(triton.metrics_url, interval_s=1.5)
    assert answered, "no page was answered during the window"
    row = snapshot.row("recommend", "home")
    assert row is not None, [(r.route, r.surface) for r in snapshot.rows]
    assert row.requests_per_s > 0
    assert row.p99_s is not None and 0 < row.p99_s < 10
    assert row.p50_s is not None and 0 < row.p50_s <= row.p99_s
    assert row.errors_per_s == 0
    assert row.compute_per_s > 0
    assert row.not_loaded == ()
    # The route whose retrieval model was never deployed says so, idle or not.
    missing = [r for r in snapshot.rows if r.route == "recommend_missing_retrieval"]
    assert missing and all(r.not_loaded == ("retrieve_not_deployed",) and r.served for r in missing)


def test_once_prints_the_home_row_in_milliseconds(triton):
    import typer

    from marquee.top.cli import top_command

    app = typer.Typer()
    app.command()(top_command)
    with pages(triton.grpc_url, "home"):
        result = CliRunner().invoke(app, ["--metrics-url", triton.metrics_url, "--once", "--interval", "1.5"])
    assert result.exit_code == 0, result.output
    row = _route_row(result.output, "recommend", "home")
    assert row is not None, result.output
    rate, p50, p99 = re.search(r"home\s*│\s*([\d.]+)\s*│\s*([\d.]+) ms\s*│\s*([\d.]+) ms", row).groups()
    assert float(rate) > 0 and 0 < float(p50) <= float(p99), row


def test_a_port_that_does_not_serve_metrics_is_a_clear_error(triton):
    # Triton's HTTP port has no /metrics: an HTTP error, said as such.
    with pytest.raises(TopError, match=r"answered HTTP 4\d\d"):
        take_snapshot(f"http://{triton.http_url}/metrics", interval_s=0.2)


@pytest.mark.skipif(not os.environ.get("MARQUEE_TOP_SCREENSHOT"), reason="set MARQUEE_TOP_SCREENSHOT=DIR to write it")
def test_readme_screenshot(triton, tmp_path):
    """Writes DIR/marquee-top.txt (and .png, with rsvg-convert) from a window with several surfaces, a route
    that degrades, one that fails and one with a model missing (the README's picture)."""
    from rich.console import Console

    from marquee.top import view

    out = Path(os.environ["MARQUEE_TOP_SCREENSHOT"])
    out.mkdir(parents=True, exist_ok=True)
    flows = [
        ("home", "recommend"),
        ("search", "recommend"),
        ("creator_tools", "recommend"),
        ("batch", "recommend_slow_ranker"),
        ("home", "recommend_missing_retrieval"),
    ]
    contexts = [pages(triton.grpc_url, surface, model) for surface, model in flows]
    for context in contexts:
        context.__enter__()
    try:
        with RecommendClient(triton.grpc_url, timeout_s=5.0, surface="search", model="recommend_corrupt_features") as c:
            queue_url = os.environ.get("MARQUEE_TOP_QUEUE_METRICS")
            stop = threading.Event()

            def corrupt() -> None:
                while not stop.is_set():
                    try:
                        c.recommend(1, 2, [], n=5)
                    except Exception:  # noqa: BLE001 - the point: it fails
                        pass
                    stop.wait(0.25)

            thread = threading.Thread(target=corrupt, daemon=True)
            thread.start()
            snapshot = take_snapshot(triton.metrics_url, queue_url, interval_s=3.0)
            stop.set()
            thread.join()
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
    console = Console(record=True, width=180, force_terminal=True, color_system="truecolor")
    console.print(view.render(snapshot))
    (out / "marquee-top.txt").write_text(console.export_text(clear=False))
    svg = tmp_path / "marquee-top.svg"
    svg.write_text(without_leading_spaces(console.export_svg(title="marquee top")))
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", str(svg), "-o", str(out / "marquee-top.png")], check=True)


def without_leading_spaces(svg: str) -> str:
    """Rich pads each cell's text with no-break spaces; librsvg drops them at the start
    of a <text>, which shifts right-aligned numbers left. Start the text after them instead."""

    def moved(match: re.Match) -> str:
        before_x, x, between, length, after, content = match.groups()
        text = html.unescape(content)
        pad = len(text) - len(text.lstrip("\xa0"))
        if not pad or pad == len(text):
            return match.group(0)
        width = float(length) / len(text)
        rest = html.escape(text[pad:], quote=False).replace("\xa0", "&#160;")
        return (
            f'{before_x}x="{float(x) + pad * width:g}"{between}'
            f'textLength="{float(length) - pad * width:g}"{after}>{rest}</text>'
        )

    pattern = re.compile(r'(<text [^>]*?)x="([\d.]+)"([^>]*?)textLength="([\d.]+)"([^>]*)>([^<]*)</text>')
    return pattern.sub(moved, svg)


def _route_row(output: str, route: str, surface: str) -> str | None:
    """The table line of (route, surface): a route's name is printed on its first row only."""
    current = None
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) < 4:
            continue
        current = cells[1] or current
        if current == route and cells[2] == surface:
            return line
    return None
