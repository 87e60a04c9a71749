"""Compare an exported model's outputs with the framework reference; collect every failure."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from marquee.errors import ExportValidationError


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name}: {self.detail}"


@dataclass
class ValidationReport:
    model: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def close_to(
        self,
        name: str,
        reference: np.ndarray,
        candidate: np.ndarray,
        atol: float,
        rtol: float = 0.0,
        mean_atol: float | None = None,
        p999_atol: float | None = None,
    ) -> None:
        if reference.shape != candidate.shape:
            self.checks.append(Check(name, False, f"shape {candidate.shape} != reference {reference.shape}"))
            return
        diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
        allowed = atol + rtol * np.abs(reference)
        worst = float(diff.max()) if diff.size else 0.0
        self.figures[f"{name}_max_abs_diff"] = worst
        # Worst |diff| as a share of what is allowed there (<= 1 passes): with rtol, the
        # allowance grows with the reference's magnitude.
        self.figures[f"{name}_worst_share_of_tolerance"] = float((diff / allowed).max()) if diff.size else 0.0
        limit = f"atol {atol:g}" + (f", rtol {rtol:g}" if rtol else "")
        self.checks.append(Check(name, bool((diff <= allowed).all()), f"max |diff| {worst:.3g} ({limit})"))
        if mean_atol is not None:
            self.at_most(f"{name}_mean_abs_diff", float(diff.mean()), mean_atol)
        if p999_atol is not None and diff.size:
            self.at_most(f"{name}_p999_abs_diff", float(np.quantile(diff, 0.999)), p999_atol)

    def at_most(self, name: str, value: float, limit: float, unit: str = "") -> None:
        self.figures[name] = value
        self.checks.append(Check(name, value <= limit, f"{value:.4g}{unit} (limit {limit:g}{unit})"))

    def at_least(self, name: str, value: float, floor: float) -> None:
        self.figures[name] = value
        self.checks.append(Check(name, value >= floor, f"{value:.4g} (floor {floor:g})"))

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        return "\n".join([f"validation of {self.model}:"] + [f"  {c.line()}" for c in self.checks])

    def raise_if_failed(self) -> None:
        if self.failures:
            raise ExportValidationError(
                f"{self.model}: {len(self.failures)} of {len(self.checks)} checks failed\n{self.summary()}"
            )
