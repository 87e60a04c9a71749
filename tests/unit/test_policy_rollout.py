"""Policy versions on files (shadow, promote, rollback) and the decision diff; no server."""

from __future__ import annotations

import pytest
import yaml

from marquee.moderation.policy import default_policy_path, load_policy, shadow_verdict
from marquee.moderation.policy_rollout import (
    ACTIVE,
    PolicyFiles,
    PolicyRolloutError,
    policy_diff,
    promote,
    read_audits,
    rollback,
    set_shadow,
)


def _policy_file(tmp_path, name: str, version: str, spam_block: float):
    raw = yaml.safe_load(default_policy_path().read_text())
    raw["version"] = version
    raw["text"]["categories"]["spam"] = {"review": min(0.5, spam_block), "block": spam_block}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "repo" / "moderate_text" / "1"
    folder.mkdir(parents=True)
    _policy_file(folder.parent.parent.parent, "p.yaml", "v1", 0.9)
    (folder / ACTIVE).write_bytes((tmp_path / "p.yaml").read_bytes())
    return PolicyFiles(tmp_path / "repo", "moderate_text")


def test_promote_and_rollback_switch_versions(files, tmp_path):
    candidate = _policy_file(tmp_path, "c.yaml", "v2", 0.5)
    set_shadow(files, candidate)
    assert load_policy(files.path(ACTIVE)).version == "v1"
    assert promote(files).version == "v2"
    assert load_policy(files.path(ACTIVE)).version == "v2"
    assert rollback(files).version == "v1"
    assert load_policy(files.path(ACTIVE)).version == "v1"
    assert rollback(files).version == "v2"  # a second rollback undoes the first


def test_promote_without_shadow_is_refused(files):
    with pytest.raises(PolicyRolloutError, match="no shadow policy to promote"):
        promote(files)


def test_malformed_candidate_is_refused_before_install(files, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\ntext: {}\n")
    with pytest.raises(ValueError, match="`image`=None; must be a mapping"):
        set_shadow(files, bad)
    assert not files.path("policy_shadow.yaml").exists()


def test_diff_counts_transitions_and_label_agreement(tmp_path):
    active = load_policy(_policy_file(tmp_path, "a.yaml", "v1", 0.9))
    candidate = load_policy(_policy_file(tmp_path, "b.yaml", "v2", 0.5))
    audits = [
        {"decision": "allow", "scores": {"spam": 0.1}},
        {"decision": "review", "scores": {"spam": 0.7}},  # review under v1, block under v2
        {"decision": "error", "scores": {}},
    ]
    report = policy_diff(audits, active, candidate, labels=["allow", "block", "allow"])
    assert report["transitions"] == {"allow->allow": 1, "review->block": 1}
    assert report["changed"] == 1 and report["judged"] == 2 and report["skipped"] == 1
    assert report["label_agreement"] == {"active": 0.5, "candidate": 1.0}


def test_shadow_verdict_is_never_enforced(tmp_path):
    candidate = load_policy(_policy_file(tmp_path, "b.yaml", "v2", 0.5))
    verdict = shadow_verdict({"spam": 0.7}, candidate, lambda p: p.text.categories)
    assert verdict["decision"] == "block" and verdict["enforced"] is False and verdict["policy_version"] == "v2"
    assert shadow_verdict({"spam": 0.7}, None, lambda p: p.text.categories) is None


def test_read_audits_takes_stored_decisions(tmp_path):
    path = tmp_path / "audits.jsonl"
    path.write_text('{"audit": {"decision": "allow", "scores": {"spam": 0.1}}}\n{"decision": "block", "scores": {}}\n')
    assert [a["decision"] for a in read_audits(path)] == ["allow", "block"]
