"""Which versions of a model Triton serves, changed through explicit model control.

`load` with a config override is Triton's way to change a loaded model's version policy:
the versions already serving keep serving while the new set loads, and a version left
out is unloaded once its in-flight requests finish. The repository API is restricted
to the admin key (marquee/server/security.py); a server must run in explicit model
control mode (`marquee serve` does).
"""

from __future__ import annotations

import json

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from marquee.server.security import AdminKey, RestrictedApiError


class ModelControl:
    def __init__(self, http_url: str, admin_key: AdminKey | None, timeout_s: float = 120.0):
        self.http_url = http_url
        self.admin_key = admin_key
        self.client = httpclient.InferenceServerClient(
            http_url, connection_timeout=timeout_s, network_timeout=timeout_s
        )

    def _headers(self) -> dict | None:
        return self.admin_key.http_headers() if self.admin_key else None

    def ready_versions(self, model: str) -> list[int]:
        """The versions of `model` that are loaded and ready."""
        index = self._restricted(lambda: self.client.get_model_repository_index(headers=self._headers()))
        return sorted(
            int(entry["version"])
            for entry in index
            if entry.get("name") == model and entry.get("state") == "READY" and str(entry.get("version", "")).isdigit()
        )

    def serve_versions(self, model: str, versions: list[int]) -> None:
        """Load exactly `versions` of `model` (a version_policy override); returns when loaded."""
        config = self.client.get_model_config(model)
        config["version_policy"] = {"specific": {"versions": sorted(set(versions))}}
        self._restricted(lambda: self.client.load_model(model, headers=self._headers(), config=json.dumps(config)))

    def _restricted(self, call):
        try:
            return call()
        except InferenceServerException as error:
            if str(error.status()) in ("403", "401"):
                source = self.admin_key.source if self.admin_key else "nowhere (no key given)"
                raise RestrictedApiError(
                    f"Triton at {self.http_url} refused the model-repository API with the admin key from {source}: "
                    "pass --admin-key-file FILE or set $MARQUEE_ADMIN_KEY"
                ) from None
            raise
