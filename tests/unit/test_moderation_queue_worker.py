"""Worker decisions about failures, with a scripted route in place of the client (the
same paths run against a real tritonserver in tests/integration/test_moderation_worker.py),
and the moderation client's parsing and input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clients.moderation import ModerationResult, _chunks, _image_tensor, _text_tensor
from marquee.errors import InferenceError, InputValidationError, ServerUnavailableError
from marquee.moderation.queue import RetryPolicy, Status
from marquee.moderation.queue.sqlite import SqliteQueue
from marquee.moderation.worker import Worker, WorkerSettings


def _result(decision: str, **audit) -> ModerationResult:
    return ModerationResult.from_wire("test", 0, decision, json.dumps({"decision": decision, **audit}))


class ScriptedRoute:
    """Answers like the route: "block" for texts with "bad", a failed request for any batch
    holding "poison", and the given exception for every call while `down` is set."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.down: Exception | None = None

    def moderate(self, kind, payloads):
        if kind == "image":
            self.calls.append([f"<{len(p)} image bytes>" for p in payloads])
            return [_result("allow") for _ in payloads]
        texts = [p.decode() for p in payloads]
        self.calls.append(texts)
        if self.down:
            raise self.down
        if any("poison" in t for t in texts):
            raise InferenceError("moderate_text: stage crashed")
        return [
            _result("error", error="text[0] is empty") if not t else _result("block" if "bad" in t else "allow")
            for t in texts
        ]


@pytest.fixture
def queue(tmp_path):
    with SqliteQueue(tmp_path / "q.sqlite", RetryPolicy(max_attempts=2, backoff_s=0.0)) as q:
        yield q


def _worker(queue, route, **settings) -> Worker:
    defaults = {"batch_size": 4, "lease_s": 30, "exit_when_empty": True, "unavailable_backoff_s": 0.0, "name": "w"}
    return Worker(queue, route, WorkerSettings(**{**defaults, **settings}))


def test_one_poison_item_fails_alone_while_its_batch_mates_are_decided(queue):
    ids = queue.enqueue("text", ["ok", "bad word", "poison", "fine"])
    route = ScriptedRoute()
    stats = _worker(queue, route).run(handle_signals=False)
    assert [queue.decision(i).decision for i in (ids[0], ids[1], ids[3])] == ["allow", "block", "allow"]
    assert queue.status(ids[2]) is Status.QUARANTINED
    (entry,) = queue.quarantined()
    assert "route failed" in entry.reason and "stage crashed" in entry.reason and entry.attempts == 2
    assert route.calls[0] == ["ok", "bad word", "poison", "fine"], "the batch goes in one request"
    assert ["poison"] in route.calls[1:], "after a failed request the items are asked one by one"
    assert (stats.decided, stats.quarantined, stats.retried) == (3, 1, 1)


def test_error_decision_is_retried_then_quarantined_with_the_routes_message(queue):
    (item_id,) = queue.enqueue("text", [""])
    route = ScriptedRoute()
    _worker(queue, route).run(handle_signals=False)
    (entry,) = queue.quarantined()
    assert entry.item_id == item_id and entry.attempts == 2
    assert entry.reason == "route answered error: text[0] is empty"
    assert len(route.calls) == 2


def test_unavailable_server_fails_the_batch_without_asking_item_by_item(queue):
    queue.enqueue("text", ["a", "b", "c"])
    route = ScriptedRoute()
    route.down = ServerUnavailableError("moderate_text: no Triton server reachable at x")
    _worker(queue, route).run(handle_signals=False)
    assert route.calls == [["a", "b", "c"], ["a", "b", "c"]], "one request per attempt, never one per item"
    assert queue.counts()[Status.QUARANTINED] == 3
    assert all("route unavailable" in entry.reason for entry in queue.quarantined())


def test_a_mixed_batch_goes_to_each_route_in_one_request_per_kind(queue):
    text_ids = queue.enqueue("text", ["a", "bad b"])
    (image_id,) = queue.enqueue("image", [b"\x89PNG" + bytes(10)])
    route = ScriptedRoute()
    _worker(queue, route).run(handle_signals=False)
    assert route.calls == [["a", "bad b"], ["<14 image bytes>"]]
    assert [queue.decision(i).decision for i in (*text_ids, image_id)] == ["allow", "block", "allow"]


def test_stop_finishes_the_batch_in_hand(queue):
    queue.enqueue("text", [f"t{i}" for i in range(10)])
    route = ScriptedRoute()
    worker = _worker(queue, route, exit_when_empty=False)
    original = route.moderate

    def stop_during_first_call(kind, payloads):
        worker.stop()  # as SIGTERM would, while the request is in flight
        return original(kind, payloads)

    route.moderate = stop_during_first_call
    worker.run(handle_signals=False)
    counts = queue.counts()
    assert (counts[Status.DECIDED], counts[Status.LEASED], counts[Status.PENDING]) == (4, 0, 6)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("one string", "got a single string; wrap it"),
        ([], "texts is empty"),
        (["ok", 3], r"texts\[1\] is int; allowed: str"),
    ],
)
def test_client_rejects_bad_texts_naming_the_item(texts, message):
    with pytest.raises(InputValidationError, match=message):
        _text_tensor(texts)


def test_client_rejects_images_that_are_not_bytes():
    with pytest.raises(InputValidationError, match=r"images\[1\] is str; allowed: encoded JPEG/PNG bytes"):
        _image_tensor([b"\x89PNG", "cat.png"])


def test_client_sends_texts_as_utf8_and_splits_long_lists():
    tensor = _text_tensor(["héllo", "x"])
    assert tensor.dtype == np.object_ and tensor[0] == "héllo".encode()
    assert [len(chunk) for chunk in _chunks(np.arange(600), 256)] == [256, 256, 88]


def test_result_is_parsed_from_the_audit_json():
    audit = {
        "decision": "review",
        "scores": {"profanity": 0.4, "insult": 0.7},
        "reasons": ["insult 0.70 >= review 0.6"],
        "policy_version": "2026-11-01",
        "policy_sha256": "ab" * 32,
        "stages": [{"model": "profanity_lexical", "version": "1", "scores": {}, "ms": 0.4}],
    }
    result = ModerationResult.from_wire("moderate_text", 0, b"review", json.dumps(audit).encode())
    assert result.decision == "review" and not result.is_error
    assert result.scores == {"profanity": 0.4, "insult": 0.7}
    assert result.reasons == ("insult 0.70 >= review 0.6",) and result.policy_version == "2026-11-01"
    assert result.audit["stages"][0]["model"] == "profanity_lexical" and json.loads(result.audit_json) == audit


@pytest.mark.parametrize(
    ("decision", "audit", "message"),
    [
        (b"allow", b"not json", r"audit\[3\] is not JSON"),
        (b"allow", b"[1]", r"audit\[3\] is list; expected a JSON object"),
        (b"maybe", b"{}", r"decision\[3\]='maybe'; expected one of"),
    ],
)
def test_malformed_route_answers_raise_naming_the_item(decision, audit, message):
    with pytest.raises(InferenceError, match=message):
        ModerationResult.from_wire("moderate_text", 3, decision, audit)
