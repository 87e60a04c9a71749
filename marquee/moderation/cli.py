"""Moderation commands: ask the routes now, queue items for the worker, run the worker,
look at and replay the quarantine.

    marquee moderate "some text" "more text"        # sync call, decisions in a table
    marquee moderate --image a.jpg --image b.png
    marquee moderate --queue "some text"            # enqueue; prints the item ids
    marquee moderation worker                       # decide queued items until Ctrl-C
    marquee moderation status                       # how many items in each state
    marquee moderation metrics --port 9108          # queue metrics for Prometheus (metrics.py)
    marquee quarantine list                         # with each item's error kind
    marquee quarantine replay ID... | --all

`--store` takes a SQLite file or a redis:// URL (default $MARQUEE_MODERATION_QUEUE, else
.marquee/moderation/queue.sqlite). Runs standalone too: `python -m marquee.moderation.cli`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import configure_logging, console
from marquee.moderation.calibrate_cli import calibrate
from marquee.moderation.policy_cli import policy_app
from marquee.moderation.review_cli import review
from marquee.moderation.train_cli import train

moderation_app = typer.Typer(help="Moderate text and images; run the queue worker.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Items the models could not judge (bad input, or faults that outlasted the retries): list and replay.",
    no_args_is_help=True,
)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Queue: a SQLite file or a redis:// URL (default: $MARQUEE_MODERATION_QUEUE, "
        "else .marquee/moderation/queue.sqlite).",
    ),
]
UrlOption = Annotated[str | None, typer.Option(help="Triton gRPC address; default localhost:8001.")]
MetricsAddressOption = Annotated[
    str,
    typer.Option(
        "--metrics-address",
        help="Address the metrics endpoint binds (default 127.0.0.1: this machine only; 0.0.0.0: every interface).",
    ),
]


def _open(store: str | None, max_attempts: int = 3, backoff_s: float = 2.0):
    from marquee.moderation.queue import RetryPolicy, open_queue

    return open_queue(store, RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s))


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def moderate(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to moderate.")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", help="Image file (JPEG/PNG); repeatable.")] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Enqueue for the worker instead; print item ids.")] = False,
    store: StoreOption = None,
    url: UrlOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the route.")] = 30.0,
) -> None:
    """Moderate texts or images now (or queue them with --queue)."""
    texts, images = texts or [], image or []
    if bool(texts) == bool(images):
        raise typer.BadParameter("give either TEXT arguments or --image paths (one kind per call)")
    for path in images:
        if not path.is_file():
            raise typer.BadParameter(f"--image {path}: no such file")
    payloads = texts or [path.read_bytes() for path in images]
    kind = "text" if texts else "image"
    labels = texts if texts else [str(path) for path in images]
    if queue:
        moderation_queue = _open(store)
        try:
            ids = moderation_queue.enqueue(kind, payloads)
        finally:
            moderation_queue.close()
        for item_id, label in zip(ids, labels, strict=True):
            console.print(f"{item_id}  {kind}  {label[:60]}", highlight=False)
        console.print(f"[green]✓[/] queued {len(ids)} {kind} item(s) in {moderation_queue!r}")
        return
    from clients.moderation import ModerationClient

    with ModerationClient(url, timeout_s=timeout) as client:
        results = client.moderate_text(texts) if texts else client.moderate_images(payloads)
    console.print(_results_table(labels, results))


def _results_table(labels: list[str], results: list):
    from rich.table import Table

    colour = {"allow": "green", "review": "yellow", "block": "red", "error": "magenta"}
    table = Table(title="moderation decisions")
    for column in ("item", "decision", "reasons / error", "top scores", "policy"):
        table.add_column(column)
    for label, result in zip(labels, results, strict=True):
        top = sorted(result.scores.items(), key=lambda kv: -kv[1])[:3]
        table.add_row(
            label[:50],
            f"[{colour.get(result.decision, 'white')}]{result.decision}",
            _problem(result) or ", ".join(result.reasons) or "-",
            ", ".join(f"{name} {score:.2f}" for name, score in top) or "-",
            result.policy_version or "-",
        )
    return table


def _problem(result) -> str | None:
    """An error result's message, led by its kind when the route gives one ("input: ...")."""
    if not result.error:
        return None
    return f"{result.error_kind}: {result.error}" if result.error_kind else result.error


moderation_app.command("moderate")(moderate)
moderation_app.add_typer(policy_app, name="policy")
moderation_app.command("calibrate")(calibrate)
moderation_app.command("review")(review)
moderation_app.command("train")(train)


@moderation_app.command("worker")
def worker(
    store: StoreOption = None,
    url: UrlOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per request to the route.")] = 16,
    lease: Annotated[float, typer.Option(min=0.1, help="Seconds a claimed batch stays ours.")] = 60.0,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before an item is quarantined.")] = 3,
    backoff: Annotated[float, typer.Option(min=0.0, help="Seconds before the first retry; doubles.")] = 2.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for one route request.")] = 30.0,
    unavailable_backoff: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait after 'server down' before claiming again; doubles to 30.")
    ] = 1.0,
    exit_when_empty: Annotated[bool, typer.Option(help="Stop once nothing is pending or leased.")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name in leases and decisions (default: host-pid).")] = None,
    text_model: Annotated[
        str | None, typer.Option(help="Deployment of the text route to call (default: moderate_text).")
    ] = None,
    image_model: Annotated[
        str | None, typer.Option(help="Deployment of the image route to call (default: moderate_image).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve queue and worker metrics on this port (0: a free one)."),
    ] = None,
    metrics_address: MetricsAddressOption = "127.0.0.1",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Decide queued items until Ctrl-C / SIGTERM (the batch in hand is finished first).

    Bad input (the route's error_kind "input", or a request the server refuses) is
    quarantined on its first attempt; model and server faults are retried with backoff
    until --max-attempts."""
    from clients.moderation import ModerationClient
    from marquee.moderation.worker import Worker, WorkerSettings

    configure_logging(verbose)
    settings = WorkerSettings(
        batch_size=batch_size,
        lease_s=lease,
        exit_when_empty=exit_when_empty,
        unavailable_backoff_s=unavailable_backoff,
    )
    if name:
        settings = dataclasses.replace(settings, name=name)
    if lease <= timeout:
        # Safe (the first decision wins) but wasteful: a slow request lets another worker
        # take the batch over and ask the route again.
        console.print(
            f"[yellow]![/] --lease {lease:g}s is not longer than --timeout {timeout:g}s; slow batches may be done twice"
        )
    moderation_queue = _open(store, max_attempts, backoff)
    routes = {"text_model": text_model, "image_model": image_model}
    with ModerationClient(url, timeout_s=timeout, **{k: v for k, v in routes.items() if v}) as client:
        the_worker = Worker(moderation_queue, client, settings)
        endpoint = None
        try:
            if metrics_port is not None:
                endpoint = _serve_metrics(store, metrics_port, metrics_address, the_worker)
            stats = the_worker.run()
        finally:
            if endpoint is not None:
                endpoint.stop()
            moderation_queue.close()
    console.print(f"[green]✓[/] worker {settings.name}: {stats.line()}")


@moderation_app.command("status")
def status(store: StoreOption = None) -> None:
    """How many queued items are pending, leased, decided and quarantined."""
    moderation_queue = _open(store)
    try:
        counts = moderation_queue.counts()
    finally:
        moderation_queue.close()
    console.print(", ".join(f"{state.value} {n}" for state, n in counts.items()) + f"  ({moderation_queue!r})")


def _serve_metrics(store: str | None, port: int, address: str, the_worker=None):
    """Queue metrics (and the worker's, if given) on their own endpoint; the collector opens
    its own connection to the store, in the endpoint's thread."""
    try:
        from marquee.moderation.metrics import registry_for, serve
    except ImportError as error:  # prometheus_client: the `worker` extra
        raise typer.BadParameter(f"metrics need prometheus_client (pip install 'marquee[worker]'): {error}") from None
    try:
        endpoint = serve(registry_for(lambda: _open(store), the_worker), port, address)
    except (ValueError, OSError) as error:
        raise typer.BadParameter(f"--metrics-address {address} / port {port}: {error}") from None
    console.print(f"moderation metrics on {endpoint.url}", highlight=False)
    return endpoint


@moderation_app.command("metrics")
def metrics(
    store: StoreOption = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the metrics endpoint (0: a free one).")] = 9108,
    address: Annotated[
        str,
        typer.Option(help="Address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every interface)."),
    ] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the queue's metrics for Prometheus (depth, lag, leases, quarantine, decisions,
    review backlog) until Ctrl-C / SIGTERM, without running a worker."""
    import signal
    import threading

    configure_logging(verbose)
    endpoint = _serve_metrics(store, port, address)
    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        stopping.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        endpoint.stop()


@quarantine_app.command("list")
def quarantine_list(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
) -> None:
    """Items the models could not judge, with the reason and the error kind: `input` (the
    item itself is unusable; quarantined on its first attempt), `model` (the route could
    not judge it), `server` (requests failed), `lease` (it kept killing or hanging
    workers), `unknown` (quarantined before kinds were recorded)."""
    from rich.table import Table

    moderation_queue = _open(store)
    try:
        entries = moderation_queue.quarantined(limit)
        total = moderation_queue.counts()
    finally:
        moderation_queue.close()
    from marquee.moderation.queue import Status

    table = Table(title=f"quarantine: {total[Status.QUARANTINED]} item(s)")
    for column in ("id", "kind", "error kind", "reason", "attempts", "when"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "error kind", "when"))
    colour = {"input": "red", "model": "yellow", "server": "yellow", "lease": "magenta"}
    for entry in entries:
        table.add_row(
            entry.item_id,
            entry.kind,
            f"[{colour.get(entry.error_kind, 'white')}]{entry.error_kind}",
            entry.reason,
            str(entry.attempts),
            _when(entry.quarantined_at),
        )
    console.print(table)


@quarantine_app.command("replay")
def quarantine_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Item ids to send back to the queue.")] = None,
    all_items: Annotated[bool, typer.Option("--all", help="Replay every quarantined item.")] = False,
    store: StoreOption = None,
) -> None:
    """Send quarantined items back to pending with fresh attempts (after fixing the cause)."""
    from marquee.moderation.queue import QueueError

    if bool(ids) == all_items:
        raise typer.BadParameter("give item IDS or --all (not both)")
    moderation_queue = _open(store)
    try:
        replayed = moderation_queue.replay(None if all_items else ids)
    except QueueError as error:
        console.print(f"[red]✗[/] {error}")
        raise typer.Exit(1) from None
    finally:
        moderation_queue.close()
    console.print(
        f"[green]✓[/] replayed {len(replayed)} item(s): {' '.join(replayed[:20])}"
        + (" ..." if len(replayed) > 20 else "")
    )


def _standalone() -> typer.Typer:
    """`python -m marquee.moderation.cli ...` without the main `marquee` app."""
    app = typer.Typer(no_args_is_help=True)
    app.add_typer(moderation_app, name="moderation")
    app.add_typer(quarantine_app, name="quarantine")
    app.command("moderate")(moderate)
    return app


if __name__ == "__main__":
    _standalone()()
