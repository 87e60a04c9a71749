"""Worker decisions about failures, with a scripted route in place of the client (the
same paths run against a real tritonserver in tests/integration/test_moderation_worker.py),
and the moderation client's parsing and input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clients.moderation import ModerationResult, _chunks, _image_tensor, _text_tensor
from marquee.errors import InferenceError, InputValidationError, ServerUnavailableError
from marquee.moderation.queue import ErrorKind, RetryPolicy, Status
from marquee.moderation.queue.sqlite import SqliteQueue
from marquee.moderation.worker import Worker, WorkerSettings


def _result(decision: str, **audit) -> ModerationResult:
    return ModerationResult.from_wire("test", 0, decision, json.dumps({"decision": decision, **audit}))


class ScriptedRoute:
    """Answers like the route: "block" for texts with "bad"; per-item "error" with
    error_kind "input" for empty texts, "model" for texts with "flaky" (the first
    `flaky_calls` calls that hold one), none at all for "legacy" (a route older than error
    kinds) and an unknown one for "weird"; a failed request for any batch holding
    "poison", a refused one (INVALID_ARGUMENT) for any holding "refuse", and the given
    exception for every call while `down` is set."""

    def __init__(self, flaky_calls: int = 1_000):
        self.calls: list[list[str]] = []
        self.down: Exception | None = None
        self.flaky_calls = flaky_calls

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
        if any("refuse" in t for t in texts):
            raise InputValidationError("moderate_text refused the request (StatusCode.INVALID_ARGUMENT): refuse")
        flaky = any("flaky" in t for t in texts) and self.flaky_calls > 0
        self.flaky_calls -= flaky
        return [self._one(t, flaky) for t in texts]

    @staticmethod
    def _one(text: str, flaky: bool) -> ModerationResult:
        if not text:
            return _result("error", error="text[0] is empty", error_kind="input")
        if "flaky" in text and flaky:
            return _result("error", error="classifier ran past its deadline", error_kind="model")
        if "legacy" in text:
            return _result("error", error="text[0] could not be judged")
        if "weird" in text:
            return _result("error", error="something new", error_kind="cosmic rays")
        return _result("block" if "bad" in text else "allow")


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
    assert entry.error_kind is ErrorKind.SERVER
    assert route.calls[0] == ["ok", "bad word", "poison", "fine"], "the batch goes in one request"
    assert ["poison"] in route.calls[1:], "after a failed request the items are asked one by one"
    assert (stats.decided, stats.quarantined, stats.retried) == (3, 1, 1)


def test_bad_input_is_quarantined_on_its_first_attempt_with_the_routes_message(queue):
    ids = queue.enqueue("text", ["ok", "", "bad word"])
    route = ScriptedRoute()
    stats = _worker(queue, route).run(handle_signals=False)
    (entry,) = queue.quarantined()
    assert (entry.item_id, entry.attempts, entry.error_kind) == (ids[1], 1, ErrorKind.INPUT)
    assert entry.reason == "route answered error (input): text[0] is empty"
    assert route.calls == [["ok", "", "bad word"]], "bad input must not be sent again"
    assert [queue.decision(i).decision for i in (ids[0], ids[2])] == ["allow", "block"]
    assert (stats.decided, stats.quarantined, stats.bad_input, stats.retried) == (2, 1, 1, 0)


def test_model_error_is_retried_until_attempts_are_spent_then_quarantined(queue):
    (item_id,) = queue.enqueue("text", ["flaky one"])
    route = ScriptedRoute()
    stats = _worker(queue, route).run(handle_signals=False)
    (entry,) = queue.quarantined()
    assert (entry.item_id, entry.attempts, entry.error_kind) == (item_id, 2, ErrorKind.MODEL)
    assert entry.reason == "route answered error (model): classifier ran past its deadline"
    assert route.calls == [["flaky one"], ["flaky one"]]
    assert (stats.retried, stats.quarantined, stats.bad_input) == (1, 1, 0)


def test_model_error_that_passes_is_decided_on_the_next_attempt(queue):
    (item_id,) = queue.enqueue("text", ["flaky but bad"])
    route = ScriptedRoute(flaky_calls=1)
    _worker(queue, route).run(handle_signals=False)
    assert queue.decision(item_id).decision == "block" and queue.item(item_id).attempts == 2
    assert queue.quarantined() == []


@pytest.mark.parametrize(
    ("text", "shown"), [("legacy", "no error_kind"), ("weird", "unknown error_kind 'cosmic rays'")]
)
def test_error_without_a_known_kind_is_retried_like_a_model_error(queue, text, shown):
    queue.enqueue("text", [text])
    route = ScriptedRoute()
    _worker(queue, route).run(handle_signals=False)
    (entry,) = queue.quarantined()
    assert entry.attempts == 2 and entry.error_kind is ErrorKind.MODEL and len(route.calls) == 2
    assert entry.reason.startswith(f"route answered error ({shown}; retried as model): ")


def test_refused_request_is_split_and_only_the_refused_item_is_quarantined_at_once(queue):
    ids = queue.enqueue("text", ["ok", "refuse me", "bad word", "fine"])
    route = ScriptedRoute()
    stats = _worker(queue, route).run(handle_signals=False)
    (entry,) = queue.quarantined()
    assert (entry.item_id, entry.attempts, entry.error_kind) == (ids[1], 1, ErrorKind.INPUT)
    assert entry.reason.startswith("route refused the item: ") and "INVALID_ARGUMENT" in entry.reason
    assert route.calls == [["ok", "refuse me", "bad word", "fine"], ["ok"], ["refuse me"], ["bad word"], ["fine"]]
    assert [queue.decision(i).decision for i in (ids[0], ids[2], ids[3])] == ["allow", "block", "allow"]
    assert (stats.decided, stats.quarantined, stats.bad_input, stats.retried) == (3, 1, 1, 0)


def test_unavailable_server_fails_the_batch_without_asking_item_by_item(queue):
    queue.enqueue("text", ["a", "b", "c"])
    route = ScriptedRoute()
    route.down = ServerUnavailableError("moderate_text: no Triton server reachable at x")
    _worker(queue, route).run(handle_signals=False)
    assert route.calls == [["a", "b", "c"], ["a", "b", "c"]], "one request per attempt, never one per item"
    assert queue.counts()[Status.QUARANTINED] == 3
    assert all("route unavailable" in entry.reason for entry in queue.quarantined())
    assert {entry.error_kind for entry in queue.quarantined()} == {ErrorKind.SERVER}


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


def test_error_result_carries_the_routes_error_kind():
    audit = {"decision": "error", "error": "text[0] is empty", "error_kind": "input"}
    result = ModerationResult.from_wire("moderate_text", 0, b"error", json.dumps(audit).encode())
    assert result.is_error and (result.error, result.error_kind) == ("text[0] is empty", "input")
    older = ModerationResult.from_wire("moderate_text", 0, b"error", b'{"error": "text[0] is empty"}')
    assert older.is_error and older.error_kind is None


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
