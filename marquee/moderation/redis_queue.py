"""The moderation queue on Redis Streams, for workers on many machines.

Layout (all keys under one prefix, default `marquee:moderation`):
- `<p>:stream`         work stream; entry {item: id}; consumer group `workers`
- `<p>:item:<id>`      hash: kind, payload, status, attempts, owner, entry (current stream entry)
- `<p>:delayed`        sorted set: items waiting out a retry backoff, scored by due time
- `<p>:decisions`      hash: id -> JSON {decision, audit, decided_at, worker}
- `<p>:quarantine`     hash: id -> JSON {reason, attempts, quarantined_at, error_kind} (what is quarantined now)
- `<p>:quarantine-log` stream: every quarantine event, kept for audit after replays
- `<p>:counts`         hash: status -> number of items
- `<p>:decision-counts` hash: decision -> number of decisions, for the queue metrics (rebuilt
                       from `<p>:decisions` by `snapshot()` when it disagrees, e.g. in an older store)

A lease is a pending entry of the consumer group: XREADGROUP hands entries out, XACK
ends the lease, and XAUTOCLAIM takes over entries idle longer than the *claiming*
worker's lease (so run workers with the same --lease). Every state change is one Lua
script, so it is atomic like the SQLite queue's transactions. Keys are built inside the
scripts, so this targets a single Redis (or Valkey) server, not a cluster.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence

from marquee.moderation.queue import (
    Decision,
    ErrorKind,
    FailOutcome,
    Item,
    QuarantineEntry,
    QueueError,
    QueueSnapshot,
    QueueStoreError,
    RetryPolicy,
    Status,
    Verdict,
    check_fail_kind,
    check_verdicts,
    encode_payloads,
    make_snapshot,
    new_item_id,
    read_error_kind,
)

GROUP = "workers"

# Shared Lua helpers: key names and the status counter kept in step with every move.
_PRELUDE = """
local p = ARGV[1]
local function item_key(id) return p .. ':item:' .. id end
local function move(id, from, to)
  if from then redis.call('HINCRBY', p .. ':counts', from, -1) end
  redis.call('HINCRBY', p .. ':counts', to, 1)
  redis.call('HSET', item_key(id), 'status', to)
end
local function ack(id)
  local entry = redis.call('HGET', item_key(id), 'entry')
  if entry and entry ~= '' then
    redis.call('XACK', p .. ':stream', 'workers', entry)
    redis.call('XDEL', p .. ':stream', entry)
  end
  redis.call('HSET', item_key(id), 'entry', '', 'owner', '')
end
local function push(id)
  local entry = redis.call('XADD', p .. ':stream', '*', 'item', id)
  redis.call('HSET', item_key(id), 'entry', entry)
end
local function quarantine(id, reason, attempts, now, kind)
  ack(id)
  move(id, redis.call('HGET', item_key(id), 'status'), 'quarantined')
  local record = cjson.encode({reason = reason, attempts = tonumber(attempts), quarantined_at = tonumber(now),
                               error_kind = kind})
  redis.call('HSET', p .. ':quarantine', id, record)
  redis.call('XADD', p .. ':quarantine-log', '*', 'item', id, 'reason', reason, 'attempts', attempts, 'at', now,
             'error_kind', kind)
end
"""

# ARGV: prefix, id, kind, payload, now, generated(0/1) -> 1 added, 0 already there
_ENQUEUE = """
local id = ARGV[2]
if redis.call('EXISTS', item_key(id)) == 1 then return 0 end
redis.call('HSET', item_key(id), 'kind', ARGV[3], 'payload', ARGV[4], 'attempts', 0, 'enqueued_at', ARGV[5])
move(id, nil, 'pending')
push(id)
return 1
"""

# ARGV: prefix, now -> moves items whose backoff is over back onto the stream
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', p .. ':delayed', '-inf', ARGV[2], 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', p .. ':delayed', id)
  push(id)
end
return #due
"""

# ARGV: prefix, id, entry, worker, now, max_attempts, lease error kind -> {kind, payload, attempts} | 'skip'
_LEASE = """
local id, entry, worker = ARGV[2], ARGV[3], ARGV[4]
local key = item_key(id)
local status = redis.call('HGET', key, 'status')
if (not status) or redis.call('HGET', key, 'entry') ~= entry or status == 'decided' or status == 'quarantined' then
  redis.call('XACK', p .. ':stream', 'workers', entry)  -- a stale entry: the item moved on
  redis.call('XDEL', p .. ':stream', entry)
  return 'skip'
end
local attempts = tonumber(redis.call('HGET', key, 'attempts'))
if status == 'leased' and attempts >= tonumber(ARGV[6]) then
  local owner = redis.call('HGET', key, 'owner')
  quarantine(id, 'lease expired without a decision ' .. attempts .. ' times (last worker ' .. owner ..
             ' died or hung)', attempts, ARGV[5], ARGV[7])
  return 'skip'
end
attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'owner', worker)
move(id, status, 'leased')
return {redis.call('HGET', key, 'kind'), redis.call('HGET', key, 'payload'), attempts}
"""

# ARGV: prefix, worker, now, then (id, decision, record) triples -> ids decided now
_DECIDE = """
for i = 4, #ARGV, 3 do
  if redis.call('EXISTS', item_key(ARGV[i])) == 0 then
    return redis.error_reply("decide: no item with id '" .. ARGV[i] .. "'")
  end
end
local decided = {}
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  local status = redis.call('HGET', item_key(id), 'status')
  if status ~= 'decided' then
    redis.call('HSET', p .. ':decisions', id, ARGV[i + 2])
    redis.call('HINCRBY', p .. ':decision-counts', ARGV[i + 1], 1)
    ack(id)
    redis.call('HDEL', p .. ':quarantine', id)
    redis.call('ZREM', p .. ':delayed', id)
    move(id, status, 'decided')
    table.insert(decided, id)
  end
end
return decided
"""

# ARGV: prefix, id, worker, reason, retryable(0/1), now, max_attempts, delay, error kind -> outcome
_FAIL = """
local id, worker = ARGV[2], ARGV[3]
local key = item_key(id)
local status = redis.call('HGET', key, 'status')
if not status then return redis.error_reply("fail: no item with id '" .. id .. "'") end
if status ~= 'leased' or redis.call('HGET', key, 'owner') ~= worker then return 'stale' end
local attempts = tonumber(redis.call('HGET', key, 'attempts'))
if ARGV[5] == '0' or attempts >= tonumber(ARGV[7]) then
  quarantine(id, ARGV[4], attempts, ARGV[6], ARGV[9])
  return 'quarantined'
end
ack(id)
redis.call('HSET', key, 'last_error', ARGV[4])
redis.call('ZADD', p .. ':delayed', tonumber(ARGV[6]) + tonumber(ARGV[8]), id)
move(id, status, 'pending')
return 'retry'
"""

# ARGV: prefix, ids... (empty: all quarantined) -> ids replayed
_REPLAY = """
local ids = {}
if #ARGV == 1 then
  ids = redis.call('HKEYS', p .. ':quarantine')
else
  local wrong = {}
  for i = 2, #ARGV do
    local status = redis.call('HGET', item_key(ARGV[i]), 'status') or 'unknown'
    if status ~= 'quarantined' then table.insert(wrong, ARGV[i] .. ' (' .. status .. ')') end
    ids[#ids + 1] = ARGV[i]
  end
  if #wrong > 0 then
    return redis.error_reply('replay: only quarantined items can be replayed; not quarantined: ' ..
                             table.concat(wrong, ', '))
  end
end
for _, id in ipairs(ids) do
  redis.call('HDEL', p .. ':quarantine', id)
  redis.call('HSET', item_key(id), 'attempts', 0)
  move(id, 'quarantined', 'pending')
  push(id)
end
return ids
"""

# How many entries `snapshot()` reads in each place a pending item can wait; beyond that
# the lag it reports is the oldest among the first SNAPSHOT_SCAN_LIMIT (a lower bound).
SNAPSHOT_SCAN_LIMIT = 10_000

# ARGV: prefix, scan limit -> {counts, oldest pending enqueued_at ('' if none), quarantined
# by error kind, decisions by decision}; the three tables flat {key, value, ...}
_SNAPSHOT = """
local limit = tonumber(ARGV[2])
local stream = p .. ':stream'
local oldest, oldest_text = nil, ''
local function consider(id)
  local fields = redis.call('HMGET', item_key(id), 'status', 'enqueued_at')
  local t = tonumber(fields[2])
  if fields[1] == 'pending' and t and (oldest == nil or t < oldest) then oldest, oldest_text = t, fields[2] end
end
local function consider_entry(fields)
  for i = 1, #fields, 2 do if fields[i] == 'item' then consider(fields[i + 1]) end end
end
-- Pending items wait in one of three places. 1: in line, entries not yet delivered.
local last = '0-0'
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  if info['name'] == 'workers' then last = info['last-delivered-id'] end
end
for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', limit)) do consider_entry(entry[2]) end
-- 2: out of line, waiting out a retry backoff.
for _, id in ipairs(redis.call('ZRANGE', p .. ':delayed', 0, limit - 1)) do consider(id) end
-- 3: delivered to a worker that died before it leased them.
for _, pending in ipairs(redis.call('XPENDING', stream, 'workers', '-', '+', limit)) do
  for _, entry in ipairs(redis.call('XRANGE', stream, pending[1], pending[1])) do consider_entry(entry[2]) end
end
local kinds, flat_kinds = {}, {}
for _, record in ipairs(redis.call('HVALS', p .. ':quarantine')) do
  local kind = cjson.decode(record)['error_kind']
  if type(kind) ~= 'string' then kind = 'unknown' end
  kinds[kind] = (kinds[kind] or 0) + 1
end
for kind, n in pairs(kinds) do table.insert(flat_kinds, kind); table.insert(flat_kinds, n) end
local decisions = redis.call('HGETALL', p .. ':decision-counts')
local sum = 0
for i = 2, #decisions, 2 do sum = sum + tonumber(decisions[i]) end
if sum ~= redis.call('HLEN', p .. ':decisions') then  -- a store from before the counter: count once
  redis.call('DEL', p .. ':decision-counts')
  for _, record in ipairs(redis.call('HVALS', p .. ':decisions')) do
    redis.call('HINCRBY', p .. ':decision-counts', cjson.decode(record)['decision'], 1)
  end
  decisions = redis.call('HGETALL', p .. ':decision-counts')
end
return {redis.call('HGETALL', p .. ':counts'), oldest_text, flat_kinds, decisions}
"""


def _store_call(method):
    """Redis unreachable, restarting or still loading its append-only file becomes
    QueueStoreError, which the worker waits out. Each script is atomic, so a call cut short
    leaves at most entries read but not leased, which XAUTOCLAIM hands out again when their
    lease time has passed."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            return method(self, *args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise QueueStoreError(f"{self!r}: {type(error).__name__}: {error}; retry later") from error

    return call


class RedisQueue:
    """`ModerationQueue` on Redis Streams (Redis >= 6.2 or Valkey: XAUTOCLAIM)."""

    def __init__(
        self,
        client,
        prefix: str = "marquee:moderation",
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ):
        from redis.exceptions import ResponseError

        self._redis = client
        self.prefix = prefix
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._response_error = ResponseError
        self._scripts = {
            name: client.register_script(_PRELUDE + body)
            for name, body in {
                "enqueue": _ENQUEUE,
                "promote": _PROMOTE,
                "lease": _LEASE,
                "decide": _DECIDE,
                "fail": _FAIL,
                "replay": _REPLAY,
                "snapshot": _SNAPSHOT,
            }.items()
        }
        try:
            client.xgroup_create(self._key("stream"), GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):  # the group exists already: fine
                raise

    @classmethod
    def from_url(cls, url: str, prefix: str = "marquee:moderation", retry: RetryPolicy | None = None) -> RedisQueue:
        import redis

        return cls(redis.Redis.from_url(url), prefix=prefix, retry=retry)

    def __repr__(self) -> str:
        kwargs = self._redis.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
        return f"RedisQueue({where!r}, prefix={self.prefix!r})"

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def _run(self, name: str, *args) -> object:
        try:
            return self._scripts[name](args=[self.prefix, *args])
        except self._response_error as error:
            message = str(error)
            if message.startswith(("decide:", "fail:", "replay:")):
                raise QueueError(message) from None
            raise

    # -- producers -------------------------------------------------------------------

    @_store_call
    def enqueue(self, kind: str, payloads: Sequence[str | bytes], ids: Sequence[str] | None = None) -> list[str]:
        rows = encode_payloads(kind, payloads, ids)
        now = self._clock()
        out = []
        for item_id, data in rows:
            # Caller ids: enqueueing one again is a no-op. Generated ids: draw again on a collision.
            while not self._run("enqueue", item_id, kind, data, now) and ids is None:
                item_id = new_item_id()
            out.append(item_id)
        return out

    # -- workers ---------------------------------------------------------------------

    @_store_call
    def claim(self, worker: str, limit: int, lease_s: float) -> list[Item]:
        if limit < 1 or lease_s <= 0:
            raise QueueError(f"claim(limit={limit}, lease_s={lease_s}); allowed: limit >= 1, lease_s > 0")
        now = self._clock()
        self._run("promote", now)
        stream = self._key("stream")
        entries = self._take_over_expired(worker, limit, lease_s)
        if len(entries) < limit:
            fresh = self._redis.xreadgroup(GROUP, worker, {stream: ">"}, count=limit - len(entries))
            for _stream, stream_entries in fresh or []:
                entries += stream_entries
        items = []
        for entry_id, fields in entries:
            if not fields:  # deleted under us (XAUTOCLAIM reports such entries with no fields)
                continue
            item_id = _text(fields[b"item"])
            leased = self._run(
                "lease", item_id, _text(entry_id), worker, now, self.retry.max_attempts, ErrorKind.LEASE.value
            )
            if leased != b"skip":
                kind, payload, attempts = leased
                items.append(Item(item_id, _text(kind), bytes(payload), int(attempts)))
        return items

    def _take_over_expired(self, worker: str, limit: int, lease_s: float) -> list:
        """Entries idle longer than `lease_s` belong to dead or hung workers: take them over.
        XAUTOCLAIM scans a window of the pending list per call, so walk it with the cursor."""
        entries, cursor = [], "0-0"
        for _ in range(100):  # bounded: one claim never scans the whole of a huge pending list
            reply = self._redis.xautoclaim(
                self._key("stream"), GROUP, worker, int(lease_s * 1000), cursor, count=limit - len(entries)
            )
            cursor, claimed = _text(reply[0]), reply[1]
            entries += claimed
            if cursor == "0-0" or len(entries) >= limit:
                break
        return entries

    @_store_call
    def renew(self, item_ids: Sequence[str], worker: str, lease_s: float) -> int:
        held = 0
        for item_id in item_ids:
            owner, entry = self._redis.hmget(self._key(f"item:{item_id}"), "owner", "entry")
            if owner is None or _text(owner) != worker or not entry:
                continue
            # XCLAIM to ourselves with min-idle 0 resets the entry's idle time: the lease clock.
            held += len(self._redis.xclaim(self._key("stream"), GROUP, worker, 0, [entry], justid=True))
        return held

    @_store_call
    def decide(self, verdicts: Sequence[Verdict], worker: str) -> list[str]:
        check_verdicts(verdicts)
        if not verdicts:
            return []
        now = self._clock()
        args: list = [worker, now]
        for verdict in verdicts:
            record = {"decision": verdict.decision, "audit": verdict.audit, "decided_at": now, "worker": worker}
            args += [verdict.item_id, verdict.decision, json.dumps(record)]
        return [_text(item_id) for item_id in self._run("decide", *args)]

    @_store_call
    def fail(self, item_id: str, worker: str, reason: str, error_kind: str = ErrorKind.MODEL) -> FailOutcome:
        kind = check_fail_kind(error_kind)
        attempts = int(self._redis.hget(self._key(f"item:{item_id}"), "attempts") or 0)
        outcome = self._run(
            "fail",
            item_id,
            worker,
            reason,
            int(kind.retryable),
            self._clock(),
            self.retry.max_attempts,
            self.retry.delay(attempts),
            kind.value,
        )
        return FailOutcome(_text(outcome))

    # -- operators -------------------------------------------------------------------

    @_store_call
    def quarantined(self, limit: int | None = None) -> list[QuarantineEntry]:
        entries = []
        for item_id, record in self._redis.hgetall(self._key("quarantine")).items():
            data = json.loads(record)
            kind = self._redis.hget(self._key(f"item:{_text(item_id)}"), "kind")
            entries.append(
                QuarantineEntry(
                    _text(item_id),
                    _text(kind),
                    data["reason"],
                    data["attempts"],
                    data["quarantined_at"],
                    error_kind=read_error_kind(data.get("error_kind")),  # absent in records from before kinds
                )
            )
        entries.sort(key=lambda entry: entry.quarantined_at)
        return entries if limit is None else entries[:limit]

    @_store_call
    def replay(self, item_ids: Sequence[str] | None = None) -> list[str]:
        ids = [] if item_ids is None else list(dict.fromkeys(item_ids))
        if item_ids is not None and not ids:
            return []
        return [_text(item_id) for item_id in self._run("replay", *ids)]

    @_store_call
    def decision(self, item_id: str) -> Decision | None:
        record = self._redis.hget(self._key("decisions"), item_id)
        if record is None:
            return None
        data = json.loads(record)
        return Decision(item_id, data["decision"], data["audit"], data["decided_at"], data["worker"])

    @_store_call
    def decisions(self) -> list[Decision]:
        out = []
        for item_id, record in self._redis.hgetall(self._key("decisions")).items():
            data = json.loads(record)
            out.append(Decision(_text(item_id), data["decision"], data["audit"], data["decided_at"], data["worker"]))
        return sorted(out, key=lambda d: d.decided_at)

    @_store_call
    def status(self, item_id: str) -> Status:
        status = self._redis.hget(self._key(f"item:{item_id}"), "status")
        if status is None:
            raise QueueError(f"no item with id {item_id!r} in {self!r}")
        return Status(_text(status))

    @_store_call
    def item(self, item_id: str) -> Item:
        kind, payload, attempts = self._redis.hmget(self._key(f"item:{item_id}"), "kind", "payload", "attempts")
        if kind is None:
            raise QueueError(f"no item with id {item_id!r} in {self!r}")
        return Item(item_id, _text(kind), bytes(payload), int(attempts))

    @_store_call
    def leased(self) -> dict[str, str]:
        stream, owners = self._key("stream"), {}
        for pending in self._redis.xpending_range(stream, GROUP, "-", "+", count=100_000):
            entry = self._redis.xrange(stream, pending["message_id"], pending["message_id"])
            if entry:
                item_id = _text(entry[0][1][b"item"])
                if self.status(item_id) is Status.LEASED:
                    owners[item_id] = _text(pending["consumer"])
        return owners

    @_store_call
    def counts(self) -> dict[Status, int]:
        counts = dict.fromkeys(Status, 0)
        for status, n in self._redis.hgetall(self._key("counts")).items():
            counts[Status(_text(status))] = int(n)
        return counts

    @_store_call
    def snapshot(self) -> QueueSnapshot:
        now = self._clock()
        counts, oldest, kinds, decisions = self._run("snapshot", SNAPSHOT_SCAN_LIMIT)
        return make_snapshot(
            now,
            {Status(_text(status)): int(n) for status, n in _pairs(counts)},
            float(_text(oldest)) if oldest else None,
            {_text(kind): int(n) for kind, n in _pairs(kinds)},
            {_text(decision): int(n) for decision, n in _pairs(decisions)},
        )

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> RedisQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pairs(flat: list) -> list[tuple]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
