"""A locust User that talks gRPC to Triton through Marquee's typed tritonclient clients.

locust runs users as gevent greenlets; gRPC's C core must be told to cooperate with
gevent (`init_gevent`) before any channel exists, or one blocking call stalls every user.
Each call is reported to locust under the model name, so locust's statistics table and
CSV read like perf_analyzer's per-model figures.
"""

from __future__ import annotations

import os
import threading
import time

import grpc.experimental.gevent as grpc_gevent
from locust import User, events

grpc_gevent.init_gevent()


@events.quit.add_listener
def _exit_even_if_grpc_lingers(exit_code: int, **_) -> None:
    """gRPC's gevent integration can keep the interpreter from exiting after locust is
    done. By the time `quit` fires, locust has printed everything; its CSV files are
    closed right after. Exit for real a moment later."""
    timer = threading.Timer(3.0, os._exit, args=(exit_code,))
    timer.daemon = True
    timer.start()


class TritonGrpcUser(User):
    """Base for users of one Triton server; `--host` is the gRPC address (localhost:8001)."""

    abstract = True

    def timed(self, name: str, call, *args, **kwargs):
        """Run `call` and report its latency (or its exception) to locust as `name`."""
        start = time.perf_counter()
        try:
            result = call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is a locust failure, not a crash
            self.report(name, start, exc)
            return None
        self.report(name, start, None)
        return result

    def timed_or_raise(self, name: str, call, *args, **kwargs):
        """As `timed`, but an exception reaches the caller unreported, to be judged there."""
        start = time.perf_counter()
        result = call(*args, **kwargs)
        self.report(name, start, None)
        return result

    def report(self, name: str, start: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    @property
    def grpc_url(self) -> str:
        host = self.host or "localhost:8001"
        return host.removeprefix("grpc://")
