"""`calibrate`: thresholds fitted to labelled scores reach the target precision; bad
label files are refused with the line and the field."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from marquee.moderation.calibrate import calibrated_policy_yaml, fit_thresholds, lowest_threshold, readable_diff
from marquee.moderation.labels import LabelFileError, read_labels
from marquee.moderation.policy import decide, default_policy_path, load_policy, parse_policy

CATEGORIES = ("profanity", "insult", "threat", "sexual", "spam")


def _planted_rows(rng: np.random.Generator, n_clean: int, n_each: int) -> list[tuple[str, dict[str, float]]]:
    """Clean items score Beta(2, 6) in every category; harmful items Beta(6, 2) in their own
    category and Beta(2, 6) elsewhere. Distributions overlap, so precision depends on the
    threshold."""
    rows = []
    for label, count in [("clean", n_clean)] + [(c, n_each) for c in CATEGORIES[1:]]:
        for _ in range(count):
            scores = {c: float(rng.beta(2, 6)) for c in CATEGORIES}
            if label != "clean":
                scores[label] = float(rng.beta(6, 2))
            rows.append((label, scores))
    return rows


def _write(path, rows) -> None:
    lines = ["label\t" + "\t".join(CATEGORIES)]
    lines += [label + "\t" + "\t".join(f"{scores[c]:.6f}" for c in CATEGORIES) for label, scores in rows]
    path.write_text("\n".join(lines) + "\n")


def _naive_base() -> tuple[dict, object]:
    """The shipped policy with the planted categories at hand-picked thresholds (0.5 / 0.85)."""
    raw = yaml.safe_load(default_policy_path().read_bytes())
    raw["text"]["categories"] = {c: {"review": 0.5, "block": 0.85} for c in CATEGORIES}
    return raw, parse_policy(yaml.safe_dump(raw).encode(), "naive")


def _flag_precision(rows, policy) -> tuple[float, float]:
    flagged = np.array([decide(scores, policy.text.categories).decision != "allow" for _, scores in rows])
    harmful = np.array([label != "clean" for label, _ in rows])
    return float(harmful[flagged].mean()), float(flagged[harmful].mean())


def test_calibrated_thresholds_reach_the_target_precision_on_planted_scores(tmp_path):
    rng = np.random.default_rng(11)
    _write(tmp_path / "labels.tsv", _planted_rows(rng, 800, 200))
    base_raw, base = _naive_base()
    items = read_labels(tmp_path / "labels.tsv", CATEGORIES)
    calibration = fit_thresholds(items, base, target_precision=0.95, rounds=100)
    text = calibrated_policy_yaml(base_raw, calibration, "test-calibrated")
    policy = parse_policy(text.encode(), "calibrated")

    # On the labelled sample, every fitted category reaches the target alone...
    for name in CATEGORIES[1:]:
        fit = calibration.categories[name]
        assert fit.kept is None and fit.review.precision >= 0.95 and fit.block.precision >= 0.99, fit
        low, high = fit.review.interval
        assert low <= fit.review.value <= high and high - low < 0.3, fit
    assert calibration.flagged_precision >= 0.95  # the whole policy on the sample
    # ...and on a fresh sample from the same distributions the whole policy stays near it
    # (the union of five categories' flags), far above the hand-picked thresholds.
    fresh = _planted_rows(np.random.default_rng(12), 2000, 500)
    precision, recall = _flag_precision(fresh, policy)
    shipped_precision, _ = _flag_precision(fresh, base)
    assert precision >= 0.94 and recall >= 0.5, (precision, recall)
    assert precision > shipped_precision + 0.05
    # The planted truth at the fitted insult threshold t, from the distributions themselves:
    # insult items pass with Beta(6,2).sf(t), the other 600 harmful and 800 clean items
    # with Beta(2,6).sf(t). The population precision must be at the target too.
    from scipy.stats import beta

    t = calibration.categories["insult"].review.value
    harmful_passing = beta(6, 2).sf(t) * 200 + beta(2, 6).sf(t) * 600
    clean_passing = beta(2, 6).sf(t) * 800
    assert harmful_passing / (harmful_passing + clean_passing) >= 0.94, t


def test_lowest_threshold_is_the_lowest_score_where_precision_holds_from_there_up():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    harmful = np.array([True, True, False, True, True, False])
    # precision at >= 0.9: 1, 0.8: 1, 0.7: 2/3, 0.6: 3/4, 0.5: 4/5, 0.4: 4/6
    assert lowest_threshold(scores, harmful, 0.99) == 0.8
    assert lowest_threshold(scores, harmful, 0.6) == 0.4
    assert lowest_threshold(scores, np.array([False] * 6), 0.5) is None


def test_a_category_with_too_few_labels_keeps_its_thresholds(tmp_path):
    rows = _planted_rows(np.random.default_rng(3), 200, 50)
    rows = [r for r in rows if r[0] != "spam"] + [r for r in rows if r[0] == "spam"][:3]
    _write(tmp_path / "labels.tsv", rows)
    base = load_policy(default_policy_path())
    calibration = fit_thresholds(read_labels(tmp_path / "labels.tsv", CATEGORIES), base, 0.9, rounds=20)
    assert "only 3 items labelled spam" in calibration.categories["spam"].kept
    text = calibrated_policy_yaml(yaml.safe_load(default_policy_path().read_bytes()), calibration, "v")
    assert parse_policy(text.encode(), "x").text.categories["spam"] == base.text.categories["spam"]
    diff = readable_diff(base, parse_policy(text.encode(), "x"), calibration)
    assert "kept: only 3 items labelled spam" in diff and "insult" in diff


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty; expected a header"),
        ("text\tinsult\nhello\t0.5\n", "lacks `label`"),
        ("label\tid\nclean\t1\n", "neither `text` nor a score column"),
        ("label\ttext\nclean\thello\nrude\tyou\n", "labels.tsv:3: field `label`='rude'; allowed: clean, profanity"),
        ("label\ttext\nclean\thello\tworld\n", "labels.tsv:2: 3 tab-separated fields, the header names 2"),
        ("label\tinsult\ninsult\t1.7\n", "labels.tsv:2: field `insult`='1.7'; allowed: a score from 0 to 1"),
        ("label\tinsult\ninsult\tnan\n", "field `insult`='nan'"),
        ("label\ttext\n# comment\nclean\t \n", "labels.tsv:3: field `text` is empty"),
        ("label\tlabel\tinsult\n", "names ['label'] twice"),
        ("label\ttext\n", "a header but no labelled lines"),
    ],
)
def test_a_bad_label_file_is_refused_with_the_line_and_field(tmp_path, content, message):
    path = tmp_path / "labels.tsv"
    path.write_text(content)
    with pytest.raises(LabelFileError, match=None) as raised:
        read_labels(path, CATEGORIES)
    assert message in str(raised.value)


def test_text_only_labels_get_the_scores_the_policy_decides_on(text_moderation_repository):
    # The shipped policy decides on `harmful` (1 - P(clean)); a label file with text only
    # must get it too, or `calibrate` could never refit that threshold.
    from export.moderation.text_classifier import onnx_probabilities
    from marquee.moderation.calibrate_cli import score_missing
    from marquee.moderation.labels import LabelledItem

    texts = ["great episode, thanks", "you absolute clown"]
    items = [LabelledItem(2, "clean", texts[0], {}), LabelledItem(3, "insult", texts[1], {})]
    scored = score_missing(items, text_moderation_repository)
    probabilities = onnx_probabilities(text_moderation_repository / "text_classifier_int8" / "1" / "model.onnx", texts)
    for item, row in zip(scored, probabilities, strict=True):
        assert set(item.scores) == {"profanity", "insult", "threat", "sexual", "spam", "harmful"}
        assert item.scores["harmful"] == pytest.approx(1.0 - row[0], abs=1e-5)
