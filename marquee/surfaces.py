"""The product surfaces file (`policies/surfaces.yaml`): which surfaces exist, their
workload class, Triton priority, queue timeout and quota.

Routes copy this module and the file into their version folder, so it imports only the
standard library and PyYAML. Errors name the field, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

WORKLOAD_CLASSES = ("interactive", "background", "batch")
# The HTTP header / gRPC metadata key naming a request's surface. The gateway keys its
# quotas on it, and Triton forwards it to the routes as a request parameter.
SURFACE_HEADER = "marquee-surface"
PROJECT_SURFACES = Path(__file__).resolve().parent.parent / "policies" / "surfaces.yaml"


class SurfacesError(ValueError):
    """The surfaces file is malformed."""


@dataclass(frozen=True)
class Surface:
    name: str
    workload_class: str
    priority: int
    queue_timeout_ms: int
    quota_rps: float


@dataclass(frozen=True)
class Surfaces:
    version: str
    sha256: str
    default: str
    by_name: dict[str, Surface]

    def get(self, name: str | None) -> Surface:
        """The named surface, the default one for None; KeyError names the known ones."""
        chosen = self.default if name is None else name
        if chosen not in self.by_name:
            raise KeyError(f"surface {chosen!r} is not known; allowed: {', '.join(sorted(self.by_name))}")
        return self.by_name[chosen]


def load_surfaces(path: str | Path = PROJECT_SURFACES) -> Surfaces:
    import yaml  # here, so that clients can read SURFACE_HEADER without PyYAML

    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
        raw = yaml.safe_load(raw_bytes)
    except (OSError, yaml.YAMLError) as error:
        raise SurfacesError(f"cannot read surfaces file {path}: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("surfaces"), dict) or not raw["surfaces"]:
        raise SurfacesError(f"{path}: top level must hold `version`, `default_surface` and a `surfaces` mapping")
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise SurfacesError(f"{path}: `version`={version!r}; must be a non-empty string")
    surfaces = {name: _surface(name, entry, path) for name, entry in raw["surfaces"].items()}
    default = raw.get("default_surface")
    if default not in surfaces:
        raise SurfacesError(f"{path}: `default_surface`={default!r}; allowed: {', '.join(sorted(surfaces))}")
    return Surfaces(version, hashlib.sha256(raw_bytes).hexdigest(), default, surfaces)


def _surface(name: object, entry: object, path: Path) -> Surface:
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise SurfacesError(f"{path}: surface name {name!r}; allowed: letters, digits and '_'")
    if not isinstance(entry, dict):
        raise SurfacesError(f"{path}: surfaces.{name} must be a mapping")
    workload = entry.get("class")
    if workload not in WORKLOAD_CLASSES:
        raise SurfacesError(f"{path}: surfaces.{name}.class={workload!r}; allowed: {', '.join(WORKLOAD_CLASSES)}")
    return Surface(
        name=name,
        workload_class=workload,
        priority=_number(entry, "priority", name, path, int, minimum=1),
        queue_timeout_ms=_number(entry, "queue_timeout_ms", name, path, int, minimum=0),
        quota_rps=_number(entry, "quota_rps", name, path, float, minimum=0),
    )


def _number(entry: dict, key: str, name: str, path: Path, kind: type, minimum: float):
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise SurfacesError(
            f"{path}: surfaces.{name}.{key}={value!r}; must be {'an integer' if kind is int else 'a number'}"
        )
    if value < minimum:
        raise SurfacesError(f"{path}: surfaces.{name}.{key}={value}; must be >= {minimum}")
    return kind(value)
