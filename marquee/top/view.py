"""The rich tables of `marquee top`: routes x surfaces, and the moderation queue."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from marquee.top.rates import QueueRow, RouteRow, totals
from marquee.top.snapshot import Snapshot

DASH = "—"


def seconds_text(value: float | None) -> str:
    """A latency: '0.84 ms', '17.5 ms', '2.35 s'; a dash when there were no requests."""
    if value is None:
        return DASH
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def age_text(value: float | None) -> str:
    """How long something has waited: '0 s', '12.3 s', '4m 05s', '2h 03m'."""
    if value is None:
        return DASH
    if value < 60:
        return "0 s" if value == 0 else f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def rate_text(value: float | None) -> str:
    if value is None:
        return DASH
    if value == 0:
        return "0"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def count_text(value: float | None) -> str:
    return DASH if value is None else f"{value:.0f}"


def _breakdown(parts: dict[str, float]) -> str:
    """'internal 0.50, input 0.25': the largest first."""
    ordered = sorted(parts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{key or '?'} {rate_text(value)}" for key, value in ordered)


def _degraded(row: RouteRow) -> Text:
    if row.degraded_pct is None:
        return Text(DASH, style="dim")
    text = Text(f"{row.degraded_pct:.1f}%", style="yellow" if row.degraded_pct > 0 else "")
    if row.degraded_by_reason:
        reasons = sorted(row.degraded_by_reason, key=lambda r: (-row.degraded_by_reason[r], r))
        text.append(f" ({', '.join(reasons)})", style="dim")
    return text


def _errors(row: RouteRow) -> Text:
    if row.errors_per_s == 0:
        return Text("0", style="dim")
    text = Text(rate_text(row.errors_per_s), style="bold red")
    text.append(f" ({_breakdown(row.errors_by_kind)})", style="red")
    return text


def _refused(row: RouteRow) -> Text:
    if row.refused_per_s == 0:
        return Text("0", style="dim")
    return Text(rate_text(row.refused_per_s), style="bold yellow")


def _not_loaded(row: RouteRow) -> Text:
    if not row.not_loaded:
        return Text("")
    text = Text(", ".join(row.not_loaded), style="bold red")
    if not row.served:
        text.append(" (no request yet)", style="dim")
    return text


def routes_table(snapshot: Snapshot) -> Table:
    when = datetime.fromtimestamp(snapshot.taken_at).strftime("%H:%M:%S")
    table = Table(
        title=f"marquee top · {snapshot.metrics_url} · {snapshot.seconds:.1f} s window · {when}",
        title_justify="left",
        expand=False,
    )
    table.add_column("route", style="bold", no_wrap=True)
    table.add_column("surface", no_wrap=True)
    table.add_column("req/s", justify="right")
    table.add_column("p50", justify="right", no_wrap=True)
    table.add_column("p99", justify="right", no_wrap=True)
    table.add_column("degraded", justify="right", no_wrap=True)
    table.add_column("errors/s", justify="right", no_wrap=True)
    table.add_column("refused/s", justify="right", no_wrap=True)
    table.add_column("compute s/s", justify="right")
    table.add_column("not loaded")
    previous_route = None
    for row in snapshot.rows:
        idle = row.requests_per_s == 0
        table.add_row(
            row.route if row.route != previous_route else "",
            row.surface or Text("(none yet)", style="dim"),
            Text(rate_text(row.requests_per_s), style="dim" if idle else "bold"),
            seconds_text(row.p50_s),
            seconds_text(row.p99_s),
            _degraded(row),
            _errors(row),
            _refused(row),
            rate_text(row.compute_per_s) if row.surface else DASH,
            _not_loaded(row),
            end_section=False,
        )
        previous_route = row.route
    requests, errors, compute = totals(snapshot.rows)
    table.caption = (
        f"all routes: {rate_text(requests)} req/s, {rate_text(errors)} errors/s, "
        f"{rate_text(compute)} compute s/s (route instance busy seconds per second)"
    )
    table.caption_justify = "left"
    if not snapshot.rows:
        table.caption = "no Marquee route series yet"
    return table


def queue_table(url: str, row: QueueRow) -> Table:
    table = Table(title=f"moderation queue · {url}", title_justify="left")
    for name in ("store", "depth", "oldest pending", "leases", "quarantined", "review backlog", "decisions/s"):
        table.add_column(name, justify="left" if name == "store" else "right", no_wrap=name != "quarantined")
    if not row.store_up:
        table.add_row(Text(f"{row.backend}: down", style="bold red"), *[DASH] * 6)
        table.caption = "the queue's endpoint answered, but could not read its store (store_up 0)"
        return table
    quarantined = Text(count_text(row.quarantined_total), style="bold red" if row.quarantined_total else "")
    if row.quarantined:
        kinds = ", ".join(f"{kind} {value:.0f}" for kind, value in sorted(row.quarantined.items()))
        quarantined.append(f" ({kinds})", style="red")
    table.add_row(
        Text(row.backend, style="green"),
        count_text(row.depth),
        age_text(row.oldest_pending_age_s),
        count_text(row.leases_in_flight),
        quarantined,
        count_text(row.review_backlog),
        rate_text(row.decisions_per_s),
    )
    return table


def render(snapshot: Snapshot) -> RenderableType:
    parts: list[RenderableType] = [routes_table(snapshot)]
    if snapshot.queue is not None and snapshot.queue_url:
        parts += [Text(""), queue_table(snapshot.queue_url, snapshot.queue)]
    return Group(*parts)


def waiting(metrics_url: str, interval_s: float) -> RenderableType:
    return Text(f"marquee top · {metrics_url} · first scrape done, next in {interval_s:g} s…", style="dim")


def failure(message: str, interval_s: float, last: RenderableType | None = None) -> RenderableType:
    """An error panel (retrying every interval) above the last good frame, if any."""
    panel = Panel(Text(message), title="scrape failed", subtitle=f"retrying every {interval_s:g} s", style="red")
    return Group(panel, last) if last is not None else panel
