"""The ranker experiment file (`policies/experiments.yaml`): cohorts, shadow scoring, guardrails.

Pure Python and numpy, free of Triton imports: the `recommend` route loads it from its
version folder and re-reads it whenever the file changes, and `marquee rollout` writes
it. Unit tests exercise exactly what serves.

- Cohort: a stable hash of (salt, user id) mapped to [0, 1); below `treatment_share` the
  user is in `treatment`, else `control`. The same user always lands in the same cohort
  for one salt, on every route instance and host; a new salt reshuffles everyone.
- Guardrails: the treatment cohort's recent pages (a sliding window) are checked against
  a p99 latency budget, a degraded rate and an error rate; a breach sends everyone back
  to control, and the reason is recorded (see `GuardrailWindow`).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import yaml

try:  # installed next to route_runtime.py in the route's version folder
    from route_runtime import ReloadingFile
except ImportError:  # imported from the marquee package
    from marquee.routes.route_runtime import ReloadingFile

CONTROL, TREATMENT, NO_COHORT = "control", "treatment", "none"
# The bounded values of the `cohort` metric label; "none" (no experiment) first.
COHORTS = (NO_COHORT, CONTROL, TREATMENT)
_HASH_SCALE = float(1 << 64)


class ExperimentError(ValueError):
    """The experiment file is malformed; the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class Guardrails:
    window_s: float = 60.0  # how far back the treatment's pages are judged
    min_pages: int = 50  # fewer treatment pages than this in the window: no verdict yet
    p99_ms: float = 50.0
    max_degraded_rate: float = 0.05
    max_error_rate: float = 0.01


@dataclass(frozen=True)
class Experiment:
    """One ranker experiment. Versions are Triton model versions of the route's ranker."""

    version: str  # the file's own version string, bumped on every edit
    sha256: str
    name: str
    control: int  # ranker version everyone gets outside the treatment cohort
    treatment: int | None  # ranker version of the treatment cohort; None: no A/B running
    treatment_share: float  # fraction of users in treatment, 0..1
    salt: str
    shadow: int | None  # ranker version scored off the critical path; None: no shadow
    shadow_share: float  # fraction of pages offered to the shadow (when it has room)
    shadow_in_flight: int  # shadow calls one route instance may have in flight; the rest are dropped
    shadow_log_share: float  # fraction of shadow-scored pages whose two rankings are logged
    guardrails: Guardrails

    @property
    def running(self) -> bool:
        """Whether users are split: a treatment version with a share above zero."""
        return self.treatment is not None and self.treatment_share > 0.0


def cohort_position(user_id: int, salt: str) -> float:
    """A user's stable position in [0, 1) for `salt` (first 8 bytes of a SHA-256)."""
    digest = hashlib.sha256(f"{salt}:{int(user_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SCALE


def assign_cohort(user_id: int, experiment: Experiment | None, rolled_back: bool = False) -> str:
    """`treatment` or `control` while an experiment runs, `none` when none does.

    After a guardrail or an operator rolled the experiment back, everyone is `control`
    (the cohort still says an experiment exists, so control metrics stay comparable)."""
    if experiment is None or not experiment.running:
        return NO_COHORT
    if rolled_back:
        return CONTROL
    return TREATMENT if cohort_position(user_id, experiment.salt) < experiment.treatment_share else CONTROL


def ranker_version(cohort: str, experiment: Experiment | None) -> int:
    """The ranker version a cohort is served by; -1 (Triton's choice) without an experiment file."""
    if experiment is None:
        return -1
    if cohort == TREATMENT and experiment.treatment is not None:
        return experiment.treatment
    return experiment.control


# -- the file -------------------------------------------------------------------------

_SECTION = "ranker"
_KEYS = {
    "name",
    "control",
    "treatment",
    "treatment_share",
    "salt",
    "shadow",
    "shadow_share",
    "shadow_in_flight",
    "shadow_log_share",
    "guardrails",
}


def parse_experiment(raw_bytes: bytes, where: str = "experiments file") -> Experiment:
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as error:
        raise ExperimentError(f"{where}: not valid YAML: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get(_SECTION), dict):
        raise ExperimentError(f"{where}: top level must hold `version` and a `{_SECTION}` mapping")
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ExperimentError(f"{where}: `version`={version!r}; must be a non-empty string")
    entry = raw[_SECTION]
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ExperimentError(f"{where}: `{_SECTION}` has unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    field = _Fields(entry, f"{where}: `{_SECTION}.", "`")
    experiment = Experiment(
        version=version,
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        name=field.text("name", "unnamed"),
        control=field.model_version("control", required=True),
        treatment=field.model_version("treatment"),
        treatment_share=field.number("treatment_share", 0.0, 0.0, 1.0),
        salt=field.text("salt", ""),
        shadow=field.model_version("shadow"),
        shadow_share=field.number("shadow_share", 1.0, 0.0, 1.0),
        shadow_in_flight=int(field.number("shadow_in_flight", 2, 1, 64, integer=True)),
        shadow_log_share=field.number("shadow_log_share", 0.0, 0.0, 1.0),
        guardrails=_guardrails(entry.get("guardrails"), where),
    )
    if experiment.treatment_share > 0 and experiment.treatment is None:
        raise ExperimentError(f"{where}: `{_SECTION}.treatment_share`={experiment.treatment_share} needs `treatment`")
    if experiment.running and not experiment.salt:
        raise ExperimentError(f"{where}: `{_SECTION}.salt` must be a non-empty string while a treatment runs")
    return experiment


def _guardrails(raw: object, where: str) -> Guardrails:
    if raw is None:
        return Guardrails()
    if not isinstance(raw, dict):
        raise ExperimentError(f"{where}: `{_SECTION}.guardrails`={raw!r}; must be a mapping")
    allowed = set(Guardrails.__dataclass_fields__)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ExperimentError(
            f"{where}: `{_SECTION}.guardrails` has unknown key(s) {unknown}; allowed: {sorted(allowed)}"
        )
    field = _Fields(raw, f"{where}: `{_SECTION}.guardrails.", "`")
    default = Guardrails()
    return Guardrails(
        window_s=field.number("window_s", default.window_s, 1.0, 86_400.0),
        min_pages=int(field.number("min_pages", default.min_pages, 1, 1_000_000, integer=True)),
        p99_ms=field.number("p99_ms", default.p99_ms, 0.1, 600_000.0),
        max_degraded_rate=field.number("max_degraded_rate", default.max_degraded_rate, 0.0, 1.0),
        max_error_rate=field.number("max_error_rate", default.max_error_rate, 0.0, 1.0),
    )


class _Fields:
    """Typed reads of one mapping, each error naming the field, the value and what is allowed."""

    def __init__(self, entry: dict, prefix: str, suffix: str):
        self.entry, self.prefix, self.suffix = entry, prefix, suffix

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}{self.suffix}"

    def text(self, key: str, default: str) -> str:
        value = self.entry.get(key, default)
        if not isinstance(value, str):
            raise ExperimentError(f"{self._name(key)}={value!r}; must be a string")
        return value

    def model_version(self, key: str, required: bool = False) -> int | None:
        value = self.entry.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            allowed = "a model version, an integer >= 1" + ("" if required else ", or null")
            raise ExperimentError(f"{self._name(key)}={value!r}; allowed: {allowed}")
        return value

    def number(self, key: str, default: float, low: float, high: float, integer: bool = False) -> float:
        value = self.entry.get(key, default)
        wrong_type = (
            isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int))
        )
        if wrong_type or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise ExperimentError(f"{self._name(key)}={value!r}; allowed: {kind} from {low:g} to {high:g}")
        return float(value)


class ExperimentFile(ReloadingFile):
    """The experiment file, re-read whenever it changes (as the route's blocklist is).
    No file: no experiment; a malformed one keeps the previous experiment in force."""

    def __init__(self, path: str, recheck_s: float = 0.25):
        super().__init__(path, parse_experiment, "experiment file", recheck_s)


# -- guardrails -------------------------------------------------------------------------


@dataclass(frozen=True)
class PageOutcome:
    at: float  # time.monotonic() when the page finished
    seconds: float
    outcome: str  # ok / degraded / error, as RouteObserver counts them


def p99(values: list[float] | np.ndarray) -> float:
    """The 99th percentile (nearest rank), the same definition as the perf reports'."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if not len(ordered):
        return 0.0
    return float(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)])


class GuardrailWindow:
    """The treatment cohort's recent pages, judged against the experiment's guardrails."""

    def __init__(self, capacity: int = 20_000):
        self._pages: deque[PageOutcome] = deque(maxlen=capacity)

    def add(self, page: PageOutcome) -> None:
        self._pages.append(page)

    def clear(self) -> None:
        self._pages.clear()

    def breach(self, guardrails: Guardrails, now: float) -> str | None:
        """Why the treatment must stop (None while it keeps within its guardrails)."""
        while self._pages and self._pages[0].at < now - guardrails.window_s:
            self._pages.popleft()
        return evaluate_guardrails(list(self._pages), guardrails)


def evaluate_guardrails(pages: list[PageOutcome], guardrails: Guardrails) -> str | None:
    count = len(pages)
    if count < guardrails.min_pages:
        return None
    errors = sum(page.outcome == "error" for page in pages) / count
    if errors > guardrails.max_error_rate:
        return f"error rate {errors:.3f} > {guardrails.max_error_rate:g} over {count} treatment pages"
    degraded = sum(page.outcome == "degraded" for page in pages) / count
    if degraded > guardrails.max_degraded_rate:
        return f"degraded rate {degraded:.3f} > {guardrails.max_degraded_rate:g} over {count} treatment pages"
    tail_ms = p99([page.seconds for page in pages]) * 1000.0
    if tail_ms > guardrails.p99_ms:
        return f"p99 {tail_ms:.1f} ms > {guardrails.p99_ms:g} ms over {count} treatment pages"
    return None


class RollbackRecord:
    """Why the current experiment was rolled back, shared by every route instance.

    A JSON file next to the experiment file: `{"experiment_sha256", "reason", "at"}`. It
    applies only to the experiment whose sha256 it names, so writing a new experiment
    file starts afresh. The first instance whose guardrails trip writes it; the others
    read it (cached for `recheck_s`) and send everyone to control as well.
    """

    def __init__(self, path: str, recheck_s: float = 0.25):
        self.path = path
        self.recheck_s = recheck_s
        self._checked_at = -math.inf
        self._record: dict | None = None
        # This instance's own verdict: holds even where the file cannot be written.
        self._local: tuple[str, str] | None = None

    def reason(self, experiment: Experiment | None) -> str | None:
        if experiment is None:
            return None
        if self._local and self._local[0] == experiment.sha256:
            return self._local[1]
        now = time.monotonic()
        if now - self._checked_at >= self.recheck_s:
            self._checked_at = now
            self._record = read_rollback(self.path)
        record = self._record
        if record and record.get("experiment_sha256") == experiment.sha256:
            return str(record.get("reason", "rolled back"))
        return None

    def write(self, experiment: Experiment, reason: str) -> None:
        """Record the rollback; raises OSError when the file cannot be written, after
        this instance has already rolled back (the caller logs it)."""
        self._local = (experiment.sha256, reason)
        write_rollback(self.path, experiment, reason)
        self._checked_at = -math.inf


def read_rollback(path: str) -> dict | None:
    import json

    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_rollback(path: str, experiment: Experiment, reason: str) -> None:
    """Written to a temporary file and renamed, so a reader never sees half a record."""
    import json

    record = {
        "experiment_sha256": experiment.sha256,
        "experiment": experiment.name,
        "reason": reason,
        "at": time.time(),
    }
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(record, f)
    os.replace(temporary, path)
