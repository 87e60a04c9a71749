"""`marquee rollout status | start | promote | rollback`: ranker experiments on a running server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console

rollout_app = typer.Typer(
    help="Ranker experiments: shadow, A/B split, promote, rollback (explicit model control, admin key).",
    no_args_is_help=True,
)

UrlOption = Annotated[str, typer.Option(help="Server HTTP address (model control).")]
RouteOption = Annotated[str, typer.Option(help="The recommend route (or a deployed variant of it).")]
RepositoryOption = Annotated[
    Path | None,
    typer.Option("--repository", "-r", help="Model repository the server loads (default: ./model_repository)."),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(help="Admin key file (default: $MARQUEE_ADMIN_KEY, else .marquee/admin.key if present)."),
]
SettleOption = Annotated[
    float, typer.Option(min=0.0, help="Seconds between switching traffic and unloading the old version.")
]


def _context(repository: Path | None, route: str, url: str | None, admin_key_file: Path | None):
    from marquee.paths import model_repository
    from marquee.rollout.control import ModelControl
    from marquee.rollout.files import RouteFiles
    from marquee.server import resolve_admin_key

    files = RouteFiles(Path(repository) if repository else model_repository(), route)
    control = ModelControl(url, resolve_admin_key(admin_key_file, create=False)) if url else None
    return files, control


@rollout_app.command("status")
def rollout_status(
    url: Annotated[
        str | None, typer.Option(help="Server HTTP address; adds the versions it serves.")
    ] = "localhost:8000",
    route: RouteOption = "recommend",
    repository: RepositoryOption = None,
    admin_key_file: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The experiment in force, any rollback and why, and the ranker versions serving."""
    from marquee.rollout.commands import status

    files, control = _context(repository, route, url, admin_key_file)
    report = status(files, control)
    if as_json:
        typer.echo(json.dumps(report, indent=2))  # plain: rich would wrap long paths
        return
    experiment = report["experiment"] or {}
    console.print(f"route {report['route']} -> ranker {report['ranker_model']}; file {report['experiment_file']}")
    console.print(
        f"experiment {experiment.get('name', '-')!r} ({report['experiment_version']}): "
        f"control v{experiment.get('control')}"
        f", treatment {experiment.get('treatment')} at {experiment.get('treatment_share', 0):.0%}"
        f", shadow {experiment.get('shadow')}"
    )
    if report["rolled_back"]:
        console.print(f"[red]rolled back:[/] {report['rolled_back']} (everyone is served by control)")
    if report["serving_versions"] is not None:
        console.print(f"serving versions of {report['ranker_model']}: {report['serving_versions']}")
    for entry in report["history"]:
        console.print(f"  {entry['at']} {entry['action']}: {entry['reason']}")


@rollout_app.command("start")
def rollout_start(
    treatment: Annotated[int | None, typer.Option(min=1, help="Ranker version of the treatment cohort.")] = None,
    share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of users in treatment.")] = 0.05,
    salt: Annotated[str | None, typer.Option(help="Cohort hash salt; default: a new one per experiment.")] = None,
    shadow: Annotated[int | None, typer.Option(min=1, help="Ranker version to score in shadow.")] = None,
    p99_ms: Annotated[float | None, typer.Option(help="Guardrail: the treatment's p99 budget (ms).")] = None,
    url: UrlOption = "localhost:8000",
    route: RouteOption = "recommend",
    repository: RepositoryOption = None,
    admin_key_file: KeyOption = None,
) -> None:
    """Load the new version(s), then split traffic and/or shadow-score by the experiment file."""
    import secrets

    from marquee.rollout.commands import start

    files, control = _context(repository, route, url, admin_key_file)
    guardrails = {"p99_ms": p99_ms} if p99_ms is not None else None
    experiment = start(files, control, treatment, share, salt or secrets.token_hex(4), shadow, guardrails=guardrails)
    console.print(
        f"[green]✓[/] {route}: {experiment.name!r}: treatment {experiment.treatment} "
        f"at {experiment.treatment_share:.0%}, shadow {experiment.shadow}"
    )


@rollout_app.command("promote")
def rollout_promote(
    url: UrlOption = "localhost:8000",
    route: RouteOption = "recommend",
    repository: RepositoryOption = None,
    admin_key_file: KeyOption = None,
    settle_s: SettleOption = 2.0,
) -> None:
    """The treatment becomes everyone's ranker; the old version is unloaded."""
    from marquee.rollout.commands import promote

    files, control = _context(repository, route, url, admin_key_file)
    experiment = promote(files, control, settle_s)
    console.print(f"[green]✓[/] {route}: everyone on ranker v{experiment.control}")


@rollout_app.command("rollback")
def rollout_rollback(
    reason: Annotated[str, typer.Option(help="Recorded in the experiment history.")] = "operator rollback",
    url: UrlOption = "localhost:8000",
    route: RouteOption = "recommend",
    repository: RepositoryOption = None,
    admin_key_file: KeyOption = None,
    settle_s: SettleOption = 2.0,
) -> None:
    """Everyone back to control; treatment and shadow versions are unloaded."""
    from marquee.rollout.commands import rollback

    files, control = _context(repository, route, url, admin_key_file)
    experiment = rollback(files, control, reason, settle_s)
    console.print(f"[green]✓[/] {route}: rolled back, everyone on ranker v{experiment.control}")


@rollout_app.command("restore")
def rollout_restore(
    url: UrlOption = "localhost:8000",
    repository: RepositoryOption = None,
    admin_key_file: KeyOption = None,
) -> None:
    """After a server restart: load the ranker versions each route's experiment file names.

    `marquee serve` and `marquee up` do this themselves; run it after starting tritonserver
    another way (the NGC container) on a repository where a rollout was promoted."""
    from marquee.rollout.commands import restore
    from marquee.rollout.files import deployed_routes

    any_route, control = _context(repository, "recommend", url, admin_key_file)
    routes = deployed_routes(any_route.repository)
    for files in routes:
        loaded = restore(files, control)
        state = f"loaded ranker versions {loaded}" if loaded else "already serving the versions it names"
        console.print(f"[green]✓[/] {files.route}: {state}")
    if not routes:
        console.print("no recommend route with an experiment file in the repository; nothing to restore")
