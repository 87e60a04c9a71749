"""The moderation policy a route enforces and the candidate it shadows, re-read while serving.

Shared by `moderate_text` and `moderate_image`, installed next to them with policy.py and
route_runtime.py. `marquee moderation policy shadow | promote | rollback` replace the
files atomically; the next request after a replacement (within `recheck_s`) decides with
the new policy, with no reload of the model. A malformed file keeps the previous policy in
force and the server log says why, once.

The shadow's decision goes into the audit record (`audit["shadow"]`, `enforced: false`)
and into `marquee_moderation_shadow_decisions_total` next to the decision in force, so
operators see how the candidate would have decided live traffic before promoting it.
"""

from __future__ import annotations

import triton_python_backend_utils as pb_utils
from policy import Policy, metric_categories, parse_policy
from route_runtime import LabelledCounter, ReloadingFile, RouteConfigError, RouteParameters

SHADOW_FILE = "policy_shadow.yaml"


class LivePolicies:
    def __init__(self, params: RouteParameters):
        self.route = params.route
        self._active_file = ReloadingFile(params.file("policy"), parse_policy, "moderation policy")
        self._shadow_file = ReloadingFile(
            params.file("policy_shadow", SHADOW_FILE), parse_policy, "shadow moderation policy"
        )
        active = self._active_file.current()
        if active is None:
            missing = f"{self._active_file.path} is missing"
            raise RouteConfigError(f"{self.route}: {self._active_file.last_error or missing}")
        self.active: Policy = active
        self.shadow: Policy | None = None
        self.categories = metric_categories(active)
        self._logged_errors: set[str] = set()
        self._shadow_decisions = LabelledCounter(
            "marquee_moderation_shadow_decisions_total",
            "decisions in force against the shadow policy's decisions on the same items (never enforced)",
            self.route,
            ("surface", "decision", "shadow_decision"),
        )

    def refresh(self) -> None:
        """Pick up replaced files; call once per request, before deciding."""
        active, self.shadow = self._active_file.current(), self._shadow_file.current()
        for error in (self._active_file.last_error, self._shadow_file.last_error):
            if error and error not in self._logged_errors:
                self._logged_errors.add(error)
                pb_utils.Logger.log_warn(f"{self.route}: {error}")
        if active is not None and active is not self.active:
            self.active = active
            self.categories = metric_categories(active)

    def record_shadow(self, audit: dict, decision: str, shadow: dict | None, surface: str) -> None:
        """Put the shadow's verdict (see policy.shadow_record) into the audit and count it."""
        if shadow is None or decision == "error":
            return
        audit["shadow"] = shadow
        self._shadow_decisions.add(1, surface=surface, decision=decision, shadow_decision=shadow["decision"])
