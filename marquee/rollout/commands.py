"""`marquee rollout status | start | promote | rollback` as library functions.

Order matters for zero failed requests:
- start: load the new ranker versions first, then write the experiment file, so no page
  is sent to a version that is not serving yet;
- promote / rollback: write the experiment file first, wait `settle_s` while every route
  instance re-reads it (each checks at most every 0.25 s) and the pages in flight finish,
  then unload the versions no longer named;
- restore: after a server (re)starts, its ranker loads the version its config.pbtxt names
  (the spec's); load the versions the experiment file names, so that a promote or an
  experiment in progress survives the restart.
"""

from __future__ import annotations

import dataclasses
import time

from marquee.rollout.control import ModelControl
from marquee.rollout.files import RolloutError, RouteFiles, experiment_fields
from marquee.routes.recommend.experiment import Experiment, parse_experiment

SETTLE_S = 2.0


def status(files: RouteFiles, control: ModelControl | None) -> dict:
    experiment = files.read()
    ranker = files.ranker_model()
    rollback = files.rollback_record()
    applies = bool(experiment and rollback and rollback.get("experiment_sha256") == experiment.sha256)
    return {
        "route": files.route,
        "ranker_model": ranker,
        "experiment_file": str(files.experiments),
        "experiment": experiment_fields(experiment) if experiment else None,
        "experiment_version": experiment.version if experiment else None,
        "rolled_back": rollback.get("reason") if applies else None,
        "serving_versions": control.ready_versions(ranker) if control else None,
        "history": files.recent_history(),
    }


def start(
    files: RouteFiles,
    control: ModelControl,
    treatment: int | None,
    share: float,
    salt: str,
    shadow: int | None = None,
    name: str | None = None,
    guardrails: dict | None = None,
    shadow_in_flight: int | None = None,
    shadow_log_share: float | None = None,
) -> Experiment:
    current = files.read()
    if current is None:
        raise RolloutError(
            f"{files.experiments}: no experiment file; export the route first (`marquee export recommend`)"
        )
    if treatment is None and shadow is None:
        raise RolloutError("rollout start needs --treatment or --shadow (or both)")
    fields = experiment_fields(current)
    fields.update(
        name=name or f"ranker v{treatment or shadow} vs v{current.control}",
        treatment=treatment,
        treatment_share=share if treatment is not None else 0.0,
        salt=salt,
        shadow=shadow,
    )
    if guardrails:
        fields["guardrails"].update(guardrails)
    if shadow_in_flight is not None:
        fields["shadow_in_flight"] = shadow_in_flight
    if shadow_log_share is not None:
        fields["shadow_log_share"] = shadow_log_share
    parse_experiment(_probe(fields), "rollout start")  # refuse bad values before loading anything
    proposed = dataclasses.replace(current, control=current.control, treatment=treatment, shadow=shadow)
    control.serve_versions(files.ranker_model(), serving_versions(proposed))
    return files.write(fields, "start", f"treatment={treatment} share={share} shadow={shadow}")


def promote(files: RouteFiles, control: ModelControl, settle_s: float = SETTLE_S) -> Experiment:
    current = _running(files, "promote")
    if current.treatment is None:
        raise RolloutError(f"{files.experiments}: no treatment to promote (shadow only?); start one with --treatment")
    fields = experiment_fields(dataclasses.replace(current, control=current.treatment))
    fields.update(treatment=None, treatment_share=0.0, shadow=None, name=f"ranker v{current.treatment}")
    return _switch(files, control, fields, "promote", f"v{current.treatment} replaces v{current.control}", settle_s)


def rollback(
    files: RouteFiles, control: ModelControl, reason: str = "operator", settle_s: float = SETTLE_S
) -> Experiment:
    current = _running(files, "rollback")
    fields = experiment_fields(current)
    fields.update(treatment=None, treatment_share=0.0, shadow=None, name=f"ranker v{current.control}")
    return _switch(files, control, fields, "rollback", reason, settle_s)


def serving_versions(experiment: Experiment) -> list[int]:
    """Every ranker version the experiment sends pages to: control, treatment, shadow."""
    return sorted({experiment.control} | {v for v in (experiment.treatment, experiment.shadow) if v is not None})


def restore(files: RouteFiles, control: ModelControl) -> list[int] | None:
    """Load the ranker versions the route's experiment file names, if the server serves
    others; returns the versions loaded, or None when nothing had to change."""
    experiment = files.read()
    if experiment is None:
        return None
    ranker, wanted = files.ranker_model(), serving_versions(experiment)
    if control.ready_versions(ranker) == wanted:
        return None
    control.serve_versions(ranker, wanted)
    return wanted


def _switch(files: RouteFiles, control: ModelControl, fields: dict, action: str, reason: str, settle_s: float):
    experiment = files.write(fields, action, reason)
    time.sleep(settle_s)
    control.serve_versions(files.ranker_model(), [experiment.control])
    return experiment


def _running(files: RouteFiles, action: str) -> Experiment:
    current = files.read()
    if current is None or (current.treatment is None and current.shadow is None):
        raise RolloutError(f"{files.experiments}: no experiment running; nothing to {action}")
    return current


def _probe(fields: dict) -> bytes:
    import yaml

    return yaml.safe_dump({"version": "probe", "ranker": fields}).encode()
