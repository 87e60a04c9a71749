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
from tests.integration.test_moderate_image import moderate as moderate_images

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


def _restored_afterwards(files: PolicyFiles):
    original = files.path(ACTIVE).read_bytes()
    yield files
    files.path(ACTIVE).write_bytes(original)
    for name in (SHADOW, PREVIOUS, HISTORY):
        files.path(name).unlink(missing_ok=True)
    time.sleep(RELOAD_S)


@pytest.fixture
def policy_files(text_moderation_repository):
    yield from _restored_afterwards(PolicyFiles(text_moderation_repository, ROUTE))


@pytest.fixture
def image_policy_files(image_moderation_repository):
    # The OCR-less variant: no text verdict in the way, so the image thresholds decide.
    yield from _restored_afterwards(PolicyFiles(image_moderation_repository, "moderate_image_no_ocr"))


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


def _strict_image_candidate(files: PolicyFiles, labels, tmp_path) -> tuple:
    """The image policy in force, plus every label the detector reported blocking at 0.05."""
    policy = yaml.safe_load(files.path(ACTIVE).read_text())
    policy["version"] = "test-strict-image-candidate"
    policy["image"]["labels"] = {label: {"review": 0.02, "block": 0.05} for label in labels}
    path = tmp_path / "strict-image.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path, load_policy(path)


def test_image_shadow_policy_is_recorded_not_enforced_then_promoted_and_rolled_back(
    image_server_alive, image_policy_files, tmp_path
):
    from export.moderation_image import synthetic

    route = image_policy_files.route
    images = [
        synthetic.encode(synthetic.blobs_image(h, w, seed), ".png") for seed, (h, w) in enumerate([(320, 320)] * 3)
    ]
    images.append(synthetic.encode(synthetic.plain_image(240, 320, 1)))  # nothing detected: allowed by both
    baseline = moderate_images(image_server_alive, images, model=route)
    detected = {d["label"] for _, audit in baseline for d in audit["detections"]}
    assert detected, "the blob images should make NudeNet fire"
    active = load_policy(image_policy_files.path(ACTIVE))

    candidate_path, candidate = _strict_image_candidate(image_policy_files, detected, tmp_path)
    set_shadow(image_policy_files, candidate_path)
    time.sleep(RELOAD_S)
    shadowed = moderate_images(image_server_alive, images, model=route)
    decisions = [decision for decision, _ in shadowed]
    assert decisions == [decision for decision, _ in baseline], "a shadow policy changed a decision in force"
    shadow = [audit["shadow"] for _, audit in shadowed]
    assert all(audit["policy_version"] == active.version for _, audit in shadowed)
    assert all(s["policy_version"] == candidate.version and s["enforced"] is False for s in shadow)
    # Every image with a detection is blocked by the candidate; the plain one stays allowed.
    expected = ["block" if audit["detections"] else "allow" for _, audit in shadowed]
    assert [s["decision"] for s in shadow] == expected
    differing = sum(s["decision"] != d for s, d in zip(shadow, decisions, strict=True))
    report = policy_diff([audit for _, audit in shadowed], active, candidate)
    assert report["judged"] == len(images) and report["changed"] == differing > 0

    promote(image_policy_files)
    time.sleep(RELOAD_S)
    promoted = moderate_images(image_server_alive, images, model=route)
    assert [decision for decision, _ in promoted] == expected, "promote did not enforce the shadow's decisions"
    assert all(audit["policy_version"] == candidate.version and "shadow" not in audit for _, audit in promoted)

    rollback(image_policy_files)
    time.sleep(RELOAD_S)
    restored = moderate_images(image_server_alive, images, model=route)
    assert [decision for decision, _ in restored] == decisions
    assert all(audit["policy_version"] == active.version for _, audit in restored)
