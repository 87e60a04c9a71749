"""The moderation policy file: decisions from thresholds, and clear errors for bad files."""

from __future__ import annotations

import pytest

from marquee.moderation.policy import (
    PolicyError,
    Thresholds,
    decide,
    default_policy_path,
    load_policy,
    most_severe,
)

THRESHOLDS = {"insult": Thresholds(review=0.5, block=0.8), "spam": Thresholds(review=0.6, block=0.9)}


def test_repository_policy_loads_with_version_and_digest():
    policy = load_policy(default_policy_path())
    assert policy.version
    assert len(policy.sha256) == 64
    low, high = policy.text.ambiguous_band
    assert 0.0 <= low < high <= 1.0
    assert {"profanity", "insult", "threat", "sexual", "spam"} <= set(policy.text.categories)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({"insult": 0.1, "spam": 0.1}, "allow"),
        ({"insult": 0.55, "spam": 0.1}, "review"),
        ({"insult": 0.55, "spam": 0.95}, "block"),
        ({"unlisted": 0.99}, "allow"),  # categories without thresholds are informational
        ({"insult": 0.8}, "block"),  # thresholds are inclusive
    ],
)
def test_decide(scores, expected):
    verdict = decide(scores, THRESHOLDS)
    assert verdict.decision == expected
    assert bool(verdict.reasons) == (expected != "allow")


def test_most_severe_ignores_errors_and_defaults_to_allow():
    assert most_severe(["allow", "review", "allow"]) == "review"
    assert most_severe(["review", "block"]) == "block"
    assert most_severe(["error"]) == "allow"
    assert most_severe([]) == "allow"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("version: ''\ntext: {}\nimage: {}\n", "`version`=''"),
        ('version: "1"\ntext: 3\nimage: {}\n', "`text`=3"),
        (
            'version: "1"\ntext: {ambiguous_band: [0.9, 0.1], categories: {a: {review: 0.1, block: 0.2}}}\n'
            "image: {labels: {b: {review: 0.1, block: 0.2}}, ocr_min_confidence: 0.5}\n",
            "low must be <= high",
        ),
        (
            'version: "1"\ntext: {ambiguous_band: [0.1, 0.9], categories: {a: {review: 0.7, block: 0.2}}}\n'
            "image: {labels: {b: {review: 0.1, block: 0.2}}, ocr_min_confidence: 0.5}\n",
            "review 0.7 must be <= block 0.2",
        ),
        (
            'version: "1"\ntext: {ambiguous_band: [0.1, 0.9], categories: {a: {review: 0.1, block: 1.5}}}\n'
            "image: {labels: {b: {review: 0.1, block: 0.2}}, ocr_min_confidence: 0.5}\n",
            "`text.categories.a.block`=1.5; must be a number in [0, 1]",
        ),
    ],
)
def test_bad_policy_files_name_the_field(tmp_path, body, message):
    path = tmp_path / "policy.yaml"
    path.write_text(body)
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_policy(path)
