"""The `moderate_text` route on a real tritonserver: cascade, decisions, audit, bad items."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from export.moderation.text_dataset import build_dataset
from marquee.moderation.policy import default_policy_path, load_policy
from marquee.specs.moderation_text import (
    MAX_CHARS,
    MAX_TEXTS,
    PROFANITY_LEXICAL,
    TEXT_CLASSES,
    TEXT_CLASSIFIER_FP32,
    TEXT_CLASSIFIER_INT8,
)
from tests.fixtures_moderation_text import (
    BROKEN_ROUTE,
    FULL_BAND_POLICY_VERSION,
    FULL_BAND_ROUTE,
    NARROW_BAND,
    NARROW_BAND_ROUTE,
    moderate,
)

pytestmark = pytest.mark.integration

# Hand-written, not generated: phrasings the classifier never saw in training.
CLEAR_CASES = {
    "clean": ["the soundtrack of this show is wonderful", "what a lovely episode, thanks for uploading"],
    # The first is blocked by stage 1 alone; the others are milder and need stage 2.
    "insult": [
        "you are a pathetic little clown",
        "nobody wants to read your worthless opinions",
        "your review is as useless as you are",
    ],
    "threat": ["I know where you live and I will hurt you", "watch your back, I'm coming for you tonight"],
    "sexual": ["send me naked pics tonight babe", "you look so sexy, show me your body"],
    "spam": ["claim your free gift card now at bit.ly/prize", "earn $800 a day from home, visit cash-now.example"],
}
AUDIT_KEYS = {"decision", "scores", "thresholds", "stages", "policy_version", "policy_sha256", "reasons"}


@pytest.fixture(scope="module")
def policy():
    return load_policy(default_policy_path())


def _stage_models(audit: dict) -> list[str]:
    return [stage["model"] for stage in audit["stages"]]


@pytest.mark.parametrize("category", TEXT_CLASSES)
def test_route_decides_clear_cases_of_each_category(text_client, category):
    # The full-band variant sends every text below the lexical block line to stage 2, so
    # every category is judged by the classifier whatever its profanity score.
    decisions, audits = moderate(text_client, CLEAR_CASES[category], model=FULL_BAND_ROUTE)
    assert any(len(audit["stages"]) == 2 for audit in audits), "no case of this category reached the classifier"
    for text, decision, audit in zip(CLEAR_CASES[category], decisions, audits, strict=True):
        if category == "clean":
            assert decision == "allow", (text, audit)
            continue
        assert decision in ("review", "block"), (text, audit)
        if len(audit["stages"]) == 2:  # not already blocked by stage 1 alone
            probabilities = audit["stages"][1]["scores"]
            assert max(probabilities, key=probabilities.get) == category, (text, audit)
            # The reason is the category itself or the harm mass (1 - P(clean)).
            assert any(reason.startswith((f"{category}=", "harmful=")) for reason in audit["reasons"]), (text, audit)


def test_stage_two_runs_only_inside_the_ambiguous_band(text_client):
    texts = [e.text for e in build_dataset().test[:60]]
    _, audits = moderate(text_client, texts, model=NARROW_BAND_ROUTE)
    low, high = NARROW_BAND
    inside = 0
    for text, audit in zip(texts, audits, strict=True):
        profanity = audit["scores"]["profanity"]
        if low <= profanity <= high:
            inside += 1
            assert _stage_models(audit) == [PROFANITY_LEXICAL.name, TEXT_CLASSIFIER_INT8.name], (text, audit)
        else:
            assert _stage_models(audit) == [PROFANITY_LEXICAL.name], (text, audit)
            assert set(audit["scores"]) == {"profanity"}, (text, audit)
    assert 0 < inside < len(texts), "the sample should have texts on both sides of the band"


def test_audit_names_models_versions_scores_thresholds_and_policy(text_client, policy):
    _, (audit,) = moderate(text_client, ["I will find you and make you regret it"], model=FULL_BAND_ROUTE)
    assert AUDIT_KEYS <= set(audit)
    assert audit["policy_version"] == FULL_BAND_POLICY_VERSION
    assert len(audit["policy_sha256"]) == 64 and audit["policy_sha256"] != policy.sha256
    assert audit["thresholds"] == {n: {"review": t.review, "block": t.block} for n, t in policy.text.categories.items()}
    lexical, classifier = audit["stages"]
    assert (lexical["model"], lexical["version"]) == (PROFANITY_LEXICAL.name, PROFANITY_LEXICAL.version)
    assert (classifier["model"], classifier["version"]) == (TEXT_CLASSIFIER_INT8.name, TEXT_CLASSIFIER_INT8.version)
    assert set(classifier["scores"]) == set(TEXT_CLASSES)
    assert sum(classifier["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert lexical["ms"] > 0 and classifier["ms"] > 0
    assert set(audit["scores"]) == {"profanity", "harmful", *(c for c in TEXT_CLASSES if c != "clean")}

    _, (default_audit,) = moderate(text_client, ["hello there"])
    assert default_audit["policy_version"] == policy.version
    assert default_audit["policy_sha256"] == policy.sha256


def test_bad_items_get_error_while_siblings_are_decided(text_client):
    texts = [
        b"what a lovely episode",
        b"",
        b" \t\n ",
        b"caf\xe9 au lait",
        ("x" * (MAX_CHARS + 1)).encode(),
        b"nice one",
    ]
    decisions, audits = moderate(text_client, texts)
    assert decisions[0] in ("allow", "review", "block") and decisions[5] in ("allow", "review", "block")
    assert decisions[1:5] == ["error"] * 4
    errors = [audits[i]["error"] for i in range(1, 5)]
    assert "text[1] is empty" in errors[0]
    assert "text[2] is only whitespace" in errors[1]
    assert "text[3] is not valid UTF-8" in errors[2]
    assert f"text[4] has {MAX_CHARS + 1} characters; allowed: 1 to {MAX_CHARS}" in errors[3]
    # ... and the server goes on serving.
    decisions, _ = moderate(text_client, ["great video, thanks"])
    assert decisions == ["allow"]


def test_request_parameter_picks_the_classifier_precision(text_client):
    text = ["you are a useless clown, learn to write"]
    _, (audit,) = moderate(text_client, text, model=FULL_BAND_ROUTE, classifier_precision="fp32")
    assert _stage_models(audit)[1] == TEXT_CLASSIFIER_FP32.name
    _, (audit,) = moderate(text_client, text, model=FULL_BAND_ROUTE)
    assert _stage_models(audit)[1] == TEXT_CLASSIFIER_INT8.name


def test_unknown_precision_and_oversized_requests_are_request_errors(text_client):
    with pytest.raises(InferenceServerException, match=r"classifier_precision`='fp16'; allowed: fp32, int8"):
        moderate(text_client, ["hello"], classifier_precision="fp16")
    with pytest.raises(InferenceServerException, match=rf"{MAX_TEXTS + 1} texts; allowed: 0 to {MAX_TEXTS}"):
        moderate(text_client, ["hello"] * (MAX_TEXTS + 1))
    assert moderate(text_client, ["great video"])[0] == ["allow"]


def test_failing_classifier_turns_only_its_texts_into_errors(text_client):
    texts = [e.text for e in build_dataset().test[:30]]
    decisions, audits = moderate(text_client, texts, model=BROKEN_ROUTE)
    low, high = NARROW_BAND
    failed = 0
    for decision, audit in zip(decisions, audits, strict=True):
        if decision == "error":
            failed += 1
            assert "no_such_classifier" in audit["error"]
        else:
            assert not low <= audit["scores"]["profanity"] <= high
    assert 0 < failed < len(texts)
