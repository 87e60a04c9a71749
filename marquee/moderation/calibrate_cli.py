"""`marquee moderation calibrate LABELS.tsv --target-precision P`: thresholds fitted to a
platform's labels, written as a new policy version with a readable diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from marquee.console import console
from marquee.moderation.policy_cli import RepositoryOption, RouteOption, _files


def score_missing(items, repository: Path):
    """Items whose file gave only text get the models' scores (in-process ONNX, the same
    graphs and versions the route calls)."""
    from marquee.moderation.labels import LabelledItem

    todo = [i for i, item in enumerate(items) if not item.scores]
    if not todo:
        return items
    if any(items[i].text is None for i in todo):
        raise typer.BadParameter("some lines have neither text nor scores")
    from export.moderation.offline_cascade import score_texts
    from marquee.routes.moderate_text.cascade import class_scores, decision_scores
    from marquee.specs.moderation_text import TEXT_CLASSES

    scored = score_texts(repository, [items[i].text for i in todo])
    result = list(items)
    for row, index in enumerate(todo):
        # The route's own scores: lexical, every class but clean, and `harmful` (1 - P(clean)).
        scores = decision_scores(scored.profanity[row], class_scores(scored.probabilities[row], TEXT_CLASSES))
        item = items[index]
        result[index] = LabelledItem(item.line, item.label, item.text, scores)
    return result


def calibrate(
    labels: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Labelled TSV: label, text and/or scores.")
    ],
    target_precision: Annotated[float, typer.Option(help="Precision the review thresholds must reach.")] = 0.95,
    block_precision: Annotated[
        float | None, typer.Option(help="Precision of block (default: the larger of the target and 0.99).")
    ] = None,
    base: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Policy to start from (default: the route's).")
    ] = None,
    output: Annotated[Path, typer.Option(help="Where the calibrated policy goes; the diff goes next to it.")] = Path(
        "moderation.calibrated.yaml"
    ),
    version: Annotated[str | None, typer.Option(help="Version of the new policy (default: dated).")] = None,
    rounds: Annotated[int, typer.Option(min=20, help="Bootstrap resamples for the 95% intervals.")] = 200,
    shadow: Annotated[bool, typer.Option(help="Install it as the route's shadow policy (never enforced).")] = False,
    route: RouteOption = "moderate_text",
    repository: RepositoryOption = None,
) -> None:
    """Fit per-category review/block thresholds to labelled items; write a new policy version and a diff."""
    from marquee.moderation.calibrate import calibrated_policy_yaml, default_version, fit_thresholds, readable_diff
    from marquee.moderation.labels import read_labels
    from marquee.moderation.policy import default_policy_path, load_policy, parse_policy
    from marquee.moderation.policy_rollout import ACTIVE, set_shadow
    from marquee.paths import model_repository

    repository = Path(repository) if repository else model_repository()
    base_path = base or _route_policy(repository, route, ACTIVE) or default_policy_path()
    base_policy = load_policy(base_path)
    categories = tuple(base_policy.text.categories)
    items = score_missing(read_labels(labels, categories), repository)
    calibration = fit_thresholds(items, base_policy, target_precision, block_precision, rounds=rounds)
    raw = yaml.safe_load(Path(base_path).read_bytes())
    text = calibrated_policy_yaml(raw, calibration, version or default_version(base_policy))
    output.write_text(text)
    candidate = parse_policy(text.encode(), output)
    diff = readable_diff(base_policy, candidate, calibration)
    diff_path = output.with_suffix(".diff.txt")
    diff_path.write_text(diff)
    console.print(diff)
    console.print(f"[green]✓[/] policy {candidate.version} -> {output}; diff -> {diff_path}")
    if shadow:
        set_shadow(_files(repository, route), output)
        console.print(f"[green]✓[/] {route}: shadow policy {candidate.version} (recorded, not enforced)")


def _route_policy(repository: Path, route: str, name: str) -> Path | None:
    path = repository / route / "1" / name
    return path if path.is_file() else None
