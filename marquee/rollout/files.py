"""The route's installed experiment file, its rollback record and its history.

The route reads `<repository>/<route>/<version>/experiments.yaml` (re-read while serving);
`marquee rollout` writes it here, validated by the same parser the route uses, and keeps
one JSON line per change in `experiments.history.jsonl` next to it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from marquee.errors import MarqueeError
from marquee.render import parse
from marquee.routes.recommend.experiment import Experiment, parse_experiment, read_rollback
from marquee.specs.recommend import RECOMMEND

PROJECT_EXPERIMENTS = Path(__file__).resolve().parents[2] / "policies" / "experiments.yaml"
HISTORY = "experiments.history.jsonl"


class RolloutError(MarqueeError, ValueError):
    """A rollout command cannot proceed; the message says what to fix."""


@dataclass(frozen=True)
class RouteFiles:
    """Where one deployed route keeps its experiment state."""

    repository: Path
    route: str

    @property
    def version_dir(self) -> Path:
        return self.repository / self.route / str(RECOMMEND.version)

    @property
    def experiments(self) -> Path:
        return self.version_dir / RECOMMEND.parameters["experiments"]

    @property
    def rollback(self) -> Path:
        return Path(f"{self.experiments}.rollback.json")

    @property
    def history(self) -> Path:
        return self.version_dir / HISTORY

    def ranker_model(self) -> str:
        """The ranker the route calls (its `ranker_model` parameter, from its config)."""
        path = self.repository / self.route / "config.pbtxt"
        if not path.is_file():
            raise RolloutError(f"--route {self.route}: no {path}; is it deployed in {self.repository}?")
        parameters = parse(path.read_text()).parameters
        if "ranker_model" not in parameters:
            raise RolloutError(f"--route {self.route}: {path} has no `ranker_model` parameter; not a recommend route")
        return parameters["ranker_model"].string_value

    def read(self) -> Experiment | None:
        if not self.experiments.is_file():
            return None
        return parse_experiment(self.experiments.read_bytes(), str(self.experiments))

    def rollback_record(self) -> dict | None:
        return read_rollback(str(self.rollback))

    def write(self, fields: dict, action: str, reason: str) -> Experiment:
        """Validate and write a new experiment file (a fresh `version`), atomically, then log it."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        document = {"version": f"{stamp} {action}", "ranker": fields}
        text = f"# Written by `marquee rollout {action}`.\n" + yaml.safe_dump(document, sort_keys=False)
        experiment = parse_experiment(text.encode(), f"rollout {action}")  # refuse before writing
        self.version_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.experiments.with_name(f".{self.experiments.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, self.experiments)
        entry = {"at": stamp, "action": action, "reason": reason, "experiment": fields}
        with self.history.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        return experiment

    def recent_history(self, count: int = 5) -> list[dict]:
        if not self.history.is_file():
            return []
        lines = self.history.read_text().splitlines()[-count:]
        return [json.loads(line) for line in lines if line.strip()]


def deployed_routes(repository: Path) -> list[RouteFiles]:
    """The recommend routes (and variants) deployed in `repository` that have an experiment file."""
    found = []
    for config in sorted(Path(repository).glob("*/config.pbtxt")):
        files = RouteFiles(Path(repository), config.parent.name)
        if files.experiments.is_file() and "ranker_model" in parse(config.read_text()).parameters:
            found.append(files)
    return found


def experiment_fields(experiment: Experiment) -> dict:
    """The file's `ranker` mapping for an experiment (what `write` takes)."""
    return {
        "name": experiment.name,
        "control": experiment.control,
        "treatment": experiment.treatment,
        "treatment_share": experiment.treatment_share,
        "salt": experiment.salt,
        "shadow": experiment.shadow,
        "shadow_share": experiment.shadow_share,
        "shadow_in_flight": experiment.shadow_in_flight,
        "shadow_log_share": experiment.shadow_log_share,
        "guardrails": {
            "window_s": experiment.guardrails.window_s,
            "min_pages": experiment.guardrails.min_pages,
            "p99_ms": experiment.guardrails.p99_ms,
            "max_degraded_rate": experiment.guardrails.max_degraded_rate,
            "max_error_rate": experiment.guardrails.max_error_rate,
        },
    }
