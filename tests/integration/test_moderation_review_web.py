"""The review page, end to end in a real headless Chromium: sign in with the admin key,
label an item the route decided "review", and find the reviewer's decision in the audit."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest

from marquee.moderation.review import ReviewQueue
from marquee.moderation.review_web import ReviewServer
from marquee.server.security import ADMIN_KEY_HEADER

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (bootstrap.sh --test)")
KEY = "review-test-key-0123456789"


@pytest.fixture
def review_page(tmp_path):
    queue = ReviewQueue(tmp_path / "review.sqlite")
    server = ReviewServer(("127.0.0.1", 0), queue, KEY)
    server.start_background()
    yield server, queue
    server.shutdown()
    server.server_close()
    queue.close()


def _flagged_audit(category: str, score: float) -> dict:
    return {
        "decision": "review",
        "reasons": [f"{category}={score:.3f}>=review 0.5"],
        "scores": {category: score},
        "policy_version": "2026-12-03.1",
    }


def test_a_reviewer_labels_an_item_in_chromium_and_the_audit_records_it(review_page):
    from tests.headless_chromium import HeadlessChromium

    server, queue = review_page
    queue.add("item-1", "the comedian absolutely killed it tonight", "review", _flagged_audit("threat", 0.61))
    queue.add("item-2", "nobody asked you, clown", "review", _flagged_audit("insult", 0.58))

    with HeadlessChromium() as browser:
        browser.open(server.url + "/")
        assert browser.wait_for("document.querySelector('#sign-in') !== null")  # not signed in: the login page
        browser.evaluate(
            f"document.querySelector('#key').value = '{KEY}';"
            "document.querySelector('#reviewer').value = 'dana';"
            "document.querySelector('#sign-in').click(); true"
        )
        browser.wait_for("document.querySelector('#who') !== null")
        assert browser.evaluate("document.querySelector('#who').textContent") == "dana"
        assert browser.evaluate("document.querySelectorAll('.item').length") == 2
        # Overturn the model on the first item (a clean comment), confirm it on the second.
        browser.evaluate("document.querySelector('.item[data-id=\"item-1\"] .label-clean').click(); true")
        browser.wait_for("location.search.includes('done=item-1')")
        browser.evaluate("document.querySelector('.item[data-id=\"item-2\"] .label-insult').click(); true")
        browser.wait_for("document.querySelector('#empty') !== null")
        assert "0 open, 2 labelled" in browser.evaluate("document.querySelector('#counts').textContent")
        browser.open(server.url + "/audit.json")
        shown = json.loads(browser.evaluate("document.body.innerText"))

    records = queue.audit_log()
    assert [r.as_dict() for r in records] == shown
    first, second = records
    assert (first.item_id, first.reviewer, first.label, first.action, first.outcome) == (
        "item-1",
        "dana",
        "clean",
        "allow",
        "overturned",
    )
    assert (first.model_decision, first.model_category, first.policy_version, first.via) == (
        "review",
        "threat",
        "2026-12-03.1",
        "web",
    )
    assert (second.label, second.outcome, second.model_category) == ("insult", "confirmed", "insult")
    assert second.at >= first.at > 0
    print("audit record:", json.dumps(first.as_dict()))


def test_the_review_page_refuses_requests_without_the_admin_key(review_page):
    server, queue = review_page
    queue.add("item-1", "some text", "review", _flagged_audit("spam", 0.7))
    form = b"item_id=item-1&label=clean"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(server.url + "/label", data=form, method="POST"), timeout=10)
    assert refused.value.code == 403
    wrong = urllib.request.Request(server.url + "/label", data=form, headers={ADMIN_KEY_HEADER: "wrong-key-000000"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(wrong, timeout=10)
    assert refused.value.code == 403
    cross_site = urllib.request.Request(
        server.url + "/label", data=form, headers={ADMIN_KEY_HEADER: KEY, "Origin": "http://evil.example"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(cross_site, timeout=10)
    assert refused.value.code == 403
    assert queue.audit_log() == [] and queue.counts() == {"open": 1, "labelled": 0}
    # An unknown label is a 400 naming what is allowed, and the server keeps serving.
    bad = urllib.request.Request(
        server.url + "/label",
        data=b"item_id=item-1&label=rude",
        headers={ADMIN_KEY_HEADER: KEY, "marquee-reviewer": "ops"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 400 and "allowed: clean, insult" in refused.value.read().decode()
    assert server.url.startswith("http://127.0.0.1:")
