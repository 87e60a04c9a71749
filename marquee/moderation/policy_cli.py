"""`marquee moderation policy shadow | promote | rollback | diff`: policy versions, audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console

policy_app = typer.Typer(
    help="Moderation policy versions: a shadow candidate (recorded, not enforced), promote, rollback, diff.",
    no_args_is_help=True,
)
RepositoryOption = Annotated[
    Path | None, typer.Option("--repository", "-r", help="Model repository (default: ./model_repository).")
]
RouteOption = Annotated[str, typer.Option(help="Moderation route whose policy files change.")]


def _files(repository: Path | None, route: str):
    from marquee.moderation.policy_rollout import PolicyFiles
    from marquee.paths import model_repository

    return PolicyFiles(Path(repository) if repository else model_repository(), route)


@policy_app.command("shadow")
def policy_shadow(
    candidate: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Candidate policy YAML.")],
    route: RouteOption = "moderate_text",
    repository: RepositoryOption = None,
) -> None:
    """Evaluate a candidate policy in shadow: decided and audited on live traffic, never enforced."""
    from marquee.moderation.policy_rollout import set_shadow

    policy = set_shadow(_files(repository, route), candidate)
    console.print(f"[green]✓[/] {route}: shadow policy {policy.version} (sha256 {policy.sha256[:12]})")


@policy_app.command("promote")
def policy_promote(route: RouteOption = "moderate_text", repository: RepositoryOption = None) -> None:
    """The shadow policy goes into force; the replaced one is kept for rollback."""
    from marquee.moderation.policy_rollout import promote

    policy = promote(_files(repository, route))
    console.print(f"[green]✓[/] {route}: policy {policy.version} in force")


@policy_app.command("rollback")
def policy_rollback(route: RouteOption = "moderate_text", repository: RepositoryOption = None) -> None:
    """The previous policy goes back into force."""
    from marquee.moderation.policy_rollout import rollback

    policy = rollback(_files(repository, route))
    console.print(f"[green]✓[/] {route}: policy {policy.version} in force again")


@policy_app.command("diff")
def policy_diff(
    candidate: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Candidate policy (default: the route's shadow).")
    ] = None,
    labelled: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="JSONL of {text, label}: scored by the running route."),
    ] = None,
    audits: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="JSONL of audit records (or stored decisions).")
    ] = None,
    store: Annotated[str | None, typer.Option(help="Moderation queue store: diff its recent decisions.")] = None,
    recent: Annotated[int, typer.Option(min=1, help="How many recent decisions of --store.")] = 1000,
    url: Annotated[str | None, typer.Option(help="Triton gRPC address for --labelled; default localhost:8001.")] = None,
    route: RouteOption = "moderate_text",
    repository: RepositoryOption = None,
) -> None:
    """How decisions would change under the candidate, on a labelled file or recent audit records."""
    from marquee.moderation.policy import load_policy
    from marquee.moderation.policy_rollout import ACTIVE, SHADOW, policy_diff, read_audits, read_labelled

    if sum(x is not None for x in (labelled, audits, store)) != 1:
        raise typer.BadParameter("give exactly one of --labelled, --audits, --store")
    files = _files(repository, route)
    active = load_policy(files.path(ACTIVE))
    chosen = load_policy(candidate) if candidate else files.load(SHADOW)
    if chosen is None:
        raise typer.BadParameter(f"no --candidate and no shadow policy at {files.path(SHADOW)}")
    labels = None
    if labelled is not None:
        from clients import ModerationClient

        texts, labels = read_labelled(labelled)
        with ModerationClient(url, text_model=route) as client:
            records = [result.audit for result in client.moderate_text(texts)]
    elif audits is not None:
        records = read_audits(audits)
    else:
        from marquee.moderation.cli import _open

        queue = _open(store)
        try:
            records = [decision.audit for decision in queue.decisions()[-recent:]]
        finally:
            queue.close()
        records = [json.loads(r) if isinstance(r, str) else r for r in records]
    console.print_json(json.dumps(policy_diff(records, active, chosen, labels)))
