"""`marquee moderation train LABELS.tsv`: retrain the classifier head on a platform's
labels and export it as the next classifier version (optionally loaded and shadowed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console
from marquee.moderation.policy_cli import RepositoryOption, RouteOption, _files


def train(
    labels: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Labelled TSV with label and text.")],
    generated: Annotated[
        bool,
        typer.Option(
            help="Train on the shipped head's set too (generated + natural dev): adapt the head, not replace it."
        ),
    ] = True,
    shadow: Annotated[
        bool, typer.Option(help="Load the new version on the running server and shadow a policy naming it.")
    ] = False,
    http_url: Annotated[str, typer.Option(help="Triton HTTP address for --shadow.")] = "localhost:8000",
    admin_key_file: Annotated[Path | None, typer.Option(help="Admin key file (default: $MARQUEE_ADMIN_KEY).")] = None,
    route: RouteOption = "moderate_text",
    repository: RepositoryOption = None,
) -> None:
    """Retrain the text classifier head on labelled items; export it as a new version next to the one in service."""
    import json

    from export.moderation.retrain import retrain
    from marquee.moderation.labels import read_labels
    from marquee.moderation.policy import load_policy
    from marquee.moderation.policy_rollout import ACTIVE
    from marquee.specs.moderation_text import TEXT_CLASSIFIER_INT8

    files = _files(repository, route)
    active = load_policy(files.path(ACTIVE))
    in_service = active.text.classifier_version or TEXT_CLASSIFIER_INT8.version
    items = read_labels(labels, tuple(active.text.categories))
    result = retrain(files.repository, items, files.path(ACTIVE), in_service, with_generated=generated)
    console.print_json(
        json.dumps(
            {
                "version": result.version,
                "in_service_version": result.in_service_version,
                "train_items": result.train_items,
                "held_out_items": result.held_out_items,
                "held_out": {
                    f"v{result.in_service_version}": result.in_service["harmful_vs_clean"],
                    f"v{result.version}": result.retrained["harmful_vs_clean"],
                },
            }
        )
    )
    console.print(f"[green]✓[/] classifier v{result.version} exported; candidate policy {result.policy_path}")
    if shadow:
        load_and_shadow(files, result.version, in_service, result.policy_path, http_url, admin_key_file)


def load_and_shadow(files, version: int, in_service: int, policy_path: Path, http_url: str, admin_key_file) -> None:
    """Both classifier models serve [in service, new]; the candidate policy goes in shadow."""
    from marquee.moderation.policy_rollout import set_shadow
    from marquee.rollout.control import ModelControl
    from marquee.server.security import resolve_admin_key
    from marquee.specs.moderation_text import TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8

    control = ModelControl(http_url, resolve_admin_key(admin_key_file, create=False))
    for spec in (TEXT_CLASSIFIER_INT8, TEXT_CLASSIFIER_FP32):
        control.serve_versions(spec.name, [in_service, version])
    policy = set_shadow(files, policy_path)
    console.print(
        f"[green]✓[/] v{version} loaded next to v{in_service}; shadow policy {policy.version}. "
        "`marquee moderation policy promote` puts it in force, `rollback` undoes that."
    )
