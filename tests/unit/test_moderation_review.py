"""The review queue: items decided "review" by the moderation queue's worker come in,
a reviewer labels them in the terminal, each label is audited, and the labels export as
the file calibrate and train read."""

from __future__ import annotations

import json

import pytest

from marquee.moderation.labels import read_labels
from marquee.moderation.queue import Verdict
from marquee.moderation.queue.sqlite import SqliteQueue
from marquee.moderation.review import ReviewError, ReviewQueue, import_reviews
from marquee.moderation.review_cli import label_interactively


def _audit(decision: str, reasons: list[str]) -> str:
    return json.dumps({"decision": decision, "reasons": reasons, "policy_version": "p1", "scores": {}})


def test_review_decisions_are_imported_labelled_in_the_terminal_audited_and_exported(tmp_path):
    queue = SqliteQueue(tmp_path / "queue.sqlite")
    ids = queue.enqueue("text", ["great episode", "you absolute clown", "see my bio for cash", "hello"])
    claimed = queue.claim("worker-1", 10, 60.0)
    assert len(claimed) == 4
    decisions = ["review", "review", "review", "allow"]
    reasons = [["threat=0.6>=review 0.5"], ["insult=0.7>=review 0.5"], ["spam=0.9>=review 0.8"], []]
    queue.decide([Verdict(i, d, _audit(d, r)) for i, d, r in zip(ids, decisions, reasons, strict=True)], "worker-1")

    with ReviewQueue(tmp_path / "review.sqlite") as review:
        assert import_reviews(review, queue) == 3
        assert import_reviews(review, queue) == 0  # idempotent
        answers = iter(["c", "bogus", "insult", "k"])  # label, a typo asked again, label, skip
        assert label_interactively(review, "sam", ask=lambda _prompt: next(answers)) == 2
        assert review.counts() == {"open": 1, "labelled": 2}

        records = review.audit_log()
        assert [(r.item_id, r.label, r.action, r.outcome, r.model_category, r.reviewer, r.via) for r in records] == [
            (ids[0], "clean", "allow", "overturned", "threat", "sam", "terminal"),
            (ids[1], "insult", "block", "confirmed", "insult", "sam", "terminal"),
        ]
        assert all(r.policy_version == "p1" and r.model_decision == "review" for r in records)

        exported = review.export_labels(tmp_path / "labels.tsv")
    items = read_labels(exported, ("profanity", "insult", "threat", "sexual", "spam"))
    assert [(i.label, i.text) for i in items] == [("clean", "great episode"), ("insult", "you absolute clown")]
    queue.close()


def test_a_later_label_is_audited_too_and_wins_in_the_export(tmp_path):
    with ReviewQueue(tmp_path / "review.sqlite") as review:
        review.add("a", "borderline text", "review", _audit("review", ["insult=0.5>=review 0.5"]))
        review.label("a", "insult", "sam", "terminal")
        review.label("a", "clean", "lee", "web")
        assert [r.reviewer for r in review.audit_log("a")] == ["sam", "lee"]
        review.export_labels(tmp_path / "labels.tsv")
    assert (tmp_path / "labels.tsv").read_text().splitlines()[1] == "clean\tborderline text"


@pytest.mark.parametrize(
    ("item_id", "label", "reviewer", "message"),
    [
        ("a", "rude", "sam", "label='rude'; allowed: clean, insult, threat, sexual, spam"),
        ("missing", "clean", "sam", "review item 'missing' is not in the review queue"),
        ("a", "clean", "  ", "reviewer=''; allowed: a name of 1 to 100 characters"),
    ],
)
def test_a_bad_review_is_refused_and_nothing_is_recorded(tmp_path, item_id, label, reviewer, message):
    with ReviewQueue(tmp_path / "review.sqlite") as review:
        review.add("a", "text", "review", _audit("review", []))
        with pytest.raises(ReviewError, match=None) as refused:
            review.label(item_id, label, reviewer, "terminal")
        assert message in str(refused.value)
        assert review.audit_log() == [] and review.counts()["open"] == 1
