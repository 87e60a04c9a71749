"""Errors of the deployment renderer."""

from __future__ import annotations

from marquee.errors import MarqueeError


class DeployError(MarqueeError):
    """A deployment could not be rendered as asked (unknown target, bad repository URI)."""


class ManifestDriftError(DeployError):
    """Committed manifests differ from what the renderer produces now."""


class ManifestValidationError(DeployError):
    """A rendered manifest does not match its Kubernetes (or CRD) schema."""
