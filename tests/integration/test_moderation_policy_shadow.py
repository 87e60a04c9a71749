"""A candidate moderation policy in shadow on a real tritonserver: decided and recorded
in every audit, never enforced; then promoted and rolled back with no reload, every
decision naming the policy version that made it."""

from __future__ import annotations

import time

import pytest
import yaml

from marquee.moderation.policy import load_policy
from marquee.moderation.policy_rollout import (
    ACTIVE,
    HISTORY,
    PREVIOUS,
    SHADOW,
    PolicyFiles,
    policy_diff,
    promote,
    rollback,
    set_shadow,
)
from tests.fixtures_moderation_text import moderate

pytestmark = pytest.mark.integration

ROUTE = "moderate_text"
RELOAD_S = 0.6  # each route instance re-checks its policy files every 0.25 s
TEXTS = [
    "have a lovely day, see you at the match",
    "you are a stupid idiot and everyone knows it",
    "what a damn shame about the weather",
    "click here to win free money now!!!",
    "this recipe is great, thanks for sharing",
    "shut up you worthless moron",
]


@pytest.fixture
def policy_files(text_moderation_repository):
    files = PolicyFiles(text_moderation_repository, ROUTE)
    original = files.path(ACTIVE).read_bytes()
    yield files
    files.path(ACTIVE).write_bytes(original)
    for name in (SHADOW, PREVIOUS, HISTORY):
        files.path(name).unlink(missing_ok=True)
    time.sleep(RELOAD_S)


def _strict_candidate(files: PolicyFiles, tmp_path) -> tuple:
    """The policy in force with every text threshold lowered: more review and block."""
    policy = yaml.safe_load(files.path(ACTIVE).read_text())
    policy["version"] = "test-strict-candidate"
    for thresholds in policy["text"]["categories"].values():
        thresholds["review"], thresholds["block"] = 0.02, 0.2
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path, load_policy(path)


def test_shadow_policy_is_recorded_not_enforced_then_promoted_and_rolled_back(text_client, policy_files, tmp_path):
    active = load_policy(policy_files.path(ACTIVE))
    baseline, _ = moderate(text_client, TEXTS)

    candidate_path, candidate = _strict_candidate(policy_files, tmp_path)
    set_shadow(policy_files, candidate_path)
    time.sleep(RELOAD_S)
    decisions, audits = moderate(text_client, TEXTS)
    assert decisions == baseline, "a shadow policy changed a decision in force"
    shadow = [audit["shadow"] for audit in audits]
    assert all(audit["policy_version"] == active.version for audit in audits)
    assert all(s["policy_version"] == candidate.version and s["enforced"] is False for s in shadow)
    differing = [k for k, s in enumerate(shadow) if s["decision"] != decisions[k]]
    assert differing, (
        f"the strict candidate should disagree somewhere: {decisions} vs {[s['decision'] for s in shadow]}"
    )
    # The diff of the recorded audits counts exactly the disagreements the route recorded.
    report = policy_diff(audits, active, candidate)
    assert report["changed"] == len(differing) and report["judged"] == len(TEXTS)

    promote(policy_files)
    time.sleep(RELOAD_S)
    promoted, promoted_audits = moderate(text_client, TEXTS)
    assert promoted == [s["decision"] for s in shadow], "promote did not enforce the shadow's decisions"
    assert all(audit["policy_version"] == candidate.version for audit in promoted_audits)
    assert all("shadow" not in audit for audit in promoted_audits)

    rollback(policy_files)
    time.sleep(RELOAD_S)
    restored, restored_audits = moderate(text_client, TEXTS)
    assert restored == baseline
    assert all(audit["policy_version"] == active.version for audit in restored_audits)
    actions = [
        line.split('"action": "')[1].split('"')[0] for line in policy_files.path(HISTORY).read_text().splitlines()
    ]
    assert actions == ["shadow", "promote", "rollback"]


def test_malformed_policy_edit_keeps_the_policy_in_force(text_client, policy_files, text_triton):
    from marquee.server.process import log_tail

    active = load_policy(policy_files.path(ACTIVE))
    # Each route instance keeps the last good policy *it* read: let every instance read the
    # current one first (an idle instance may still hold one from an earlier test).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: moderate(text_client, TEXTS[:1]), range(16)))
    policy_files.path(ACTIVE).write_text("version: broken\ntext: {categories: {spam: {review: 2, block: 3}}}\n")
    time.sleep(RELOAD_S)
    decisions, audits = moderate(text_client, TEXTS[:2])
    assert [audit.get("policy_version") for audit in audits] == [active.version] * 2, audits
    assert "moderation policy not reloaded, previous one kept" in log_tail(text_triton.log_path, 300)
