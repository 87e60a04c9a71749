"""Pure cascade steps of `moderate_text`: item checks, band selection, decisions and audits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marquee.moderation.policy import decide, default_policy_path, load_policy
from marquee.routes.moderate_text.cascade import (
    ItemError,
    StageRun,
    ambiguous,
    check_text,
    class_scores,
    encode_outputs,
    error_audit,
    judge,
    read_batch,
)
from marquee.specs.moderation_text import TEXT_CLASSES

LEXICAL = StageRun("profanity_lexical", 1, 0.4)
CLASSIFIER = StageRun("text_classifier_int8", 1, 12.0)


@pytest.fixture(scope="module")
def policy():
    return load_policy(default_policy_path())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "text[3] is empty; allowed: 1 to 10 characters"),
        (b"  \n\t", "text[3] is only whitespace (4 characters); allowed: visible text"),
        (b"caf\xe9", "text[3] is not valid UTF-8 (at byte 3: b'\\xe9'); allowed: UTF-8 encoded text"),
        (b"x" * 11, "text[3] has 11 characters; allowed: 1 to 10"),
        (7, "text[3] is int; allowed: UTF-8 bytes"),
    ],
)
def test_check_text_rejects_bad_items_with_a_message_naming_the_item(raw, message):
    with pytest.raises(ItemError) as raised:
        check_text(raw, 3, max_chars=10)
    assert str(raised.value) == message


def test_check_text_counts_characters_not_bytes():
    assert check_text("ééééé".encode(), 0, max_chars=5) == "ééééé"


def test_read_batch_keeps_good_items_and_records_bad_ones_by_position():
    batch = read_batch([b"hello", b"", b"world"], max_chars=100)
    assert batch.valid_indices == [0, 2]
    assert batch.texts == {0: "hello", 2: "world"}
    assert list(batch.errors) == [1]


def test_ambiguous_band_is_inclusive_at_both_ends():
    scores = np.array([0.0999, 0.1, 0.5, 0.9, 0.9001], dtype=np.float32)
    assert ambiguous(scores, (0.1, 0.9)).tolist() == [False, True, True, True, False]


def test_class_scores_refuses_a_probability_count_that_does_not_match_the_classes():
    with pytest.raises(ValueError, match="3 probabilities for 5 classes"):
        class_scores(np.array([0.2, 0.3, 0.5]), TEXT_CLASSES)


def test_judge_with_stage_one_only_decides_on_profanity(policy):
    block = policy.text.categories["profanity"].block
    decision, audit = judge(block + 0.01, None, LEXICAL, None, policy, decide)
    assert decision == "block"
    assert audit["scores"] == {"profanity": pytest.approx(block + 0.01)}
    assert [s["model"] for s in audit["stages"]] == ["profanity_lexical"]
    assert audit["reasons"] and audit["reasons"][0].startswith("profanity=")


def test_judge_with_stage_two_uses_every_class_but_clean_and_the_harm_mass(policy):
    harmful = policy.text.categories["harmful"]
    clean = 1.0 - (harmful.review + harmful.block) / 2  # the harm mass between review and block
    spread = (1.0 - clean) / 2  # split over two classes, neither decisive alone
    probabilities = class_scores(np.array([clean, spread, spread, 0.0, 0.0]), TEXT_CLASSES)
    decision, audit = judge(0.3, probabilities, LEXICAL, CLASSIFIER, policy, decide)
    assert decision == "review"
    assert audit["reasons"][0].startswith("harmful=")
    assert set(audit["scores"]) == {"profanity", "insult", "threat", "sexual", "spam", "harmful"}
    assert audit["scores"]["harmful"] == pytest.approx(1.0 - clean, abs=1e-6)
    assert audit["stages"][1] == {"model": "text_classifier_int8", "version": 1, "scores": probabilities, "ms": 12.0}
    assert audit["policy_version"] == policy.version and audit["policy_sha256"] == policy.sha256
    assert audit["thresholds"]["harmful"] == {"review": harmful.review, "block": harmful.block}


def test_a_confident_clean_text_is_allowed(policy):
    probabilities = class_scores(np.array([0.96, 0.01, 0.01, 0.01, 0.01]), TEXT_CLASSES)
    decision, audit = judge(0.2, probabilities, LEXICAL, CLASSIFIER, policy, decide)
    assert (decision, audit["reasons"]) == ("allow", [])


def test_outputs_are_one_bytes_element_per_text_and_audits_are_json(policy):
    results = [
        judge(0.01, None, LEXICAL, None, policy, decide),
        ("error", error_audit("text[1] is empty", policy, "input")),
    ]
    decisions, audits = encode_outputs(results)
    assert decisions.dtype == np.object_ and decisions.tolist() == [b"allow", b"error"]
    parsed = [json.loads(a) for a in audits]
    assert parsed[1]["error"] == "text[1] is empty" and parsed[1]["policy_sha256"] == policy.sha256
