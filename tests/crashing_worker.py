"""A moderation worker that SIGKILLs itself at one step boundary of one batch.

    python -m tests.crashing_worker STORE GRPC_URL BOUNDARY BATCH [--batch-size 8] [--lease 1.5] [--name N]

The real `Worker`, queue and `ModerationClient`, with the queue or the client wrapped so
that, on the BATCH-th batch (1-based), the process kills itself with SIGKILL exactly at
BOUNDARY:
- `after_claim`: the batch is leased, the route not yet asked;
- `after_model_call`: the route answered, nothing written;
- `before_decision_write`: about to write the batch's decisions.
SIGKILL from inside is the same signal an operator or the OOM killer sends from outside,
but lands at a known point instead of a random one. Exits 3 if the boundary was never
reached (the test then fails: the kill it meant to test did not happen).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

BOUNDARIES = ("after_claim", "after_model_call", "before_decision_write")


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _Counting:
    def __init__(self, target_batch: int):
        self.batch = 0
        self.target = target_batch

    def at_target(self) -> bool:
        return self.batch == self.target


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("url")
    parser.add_argument("boundary", choices=BOUNDARIES)
    parser.add_argument("batch", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lease", type=float, default=1.5)
    parser.add_argument("--name", default="crashing")
    args = parser.parse_args()

    from clients.moderation import ModerationClient
    from marquee.moderation.queue import RetryPolicy, open_queue
    from marquee.moderation.worker import Worker, WorkerSettings

    queue = open_queue(args.store, RetryPolicy(max_attempts=3, backoff_s=0.1))
    counter = _Counting(args.batch)
    claim, decide = queue.claim, queue.decide

    def claiming(*a, **k):
        items = claim(*a, **k)
        if items:
            counter.batch += 1
            print(f"claimed batch {counter.batch}: {[item.id for item in items]}", flush=True)
            if args.boundary == "after_claim" and counter.at_target():
                _die()
        return items

    def deciding(verdicts, worker):
        if args.boundary == "before_decision_write" and counter.at_target():
            _die()
        return decide(verdicts, worker)

    queue.claim, queue.decide = claiming, deciding
    settings = WorkerSettings(batch_size=args.batch_size, lease_s=args.lease, exit_when_empty=True, name=args.name)
    with ModerationClient(args.url, timeout_s=30) as client:
        moderate = client.moderate

        def moderating(kind, payloads):
            results = moderate(kind, payloads)
            if args.boundary == "after_model_call" and counter.at_target():
                _die()
            return results

        client.moderate = moderating
        Worker(queue, client, settings).run()
    print(f"boundary {args.boundary} of batch {args.batch} was never reached", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
