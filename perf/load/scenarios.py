"""The users of Marquee's locust scenarios (the shapes live in steady_mixed.py and
live_event_surge.py, one per locustfile, as locust wants):

    locust -f perf/load/steady_mixed.py --host localhost:8001 --headless
    locust -f perf/load/live_event_surge.py --host localhost:8001 --headless

Users:
- HomePageViewer: a viewer opening the home page (`recommend`, 20 titles, surface `home`),
  interactive.
- CreatorToolsFlood: an internal creator tool hammering `recommend` (surface
  `creator_tools`) as fast as it can, e.g. a preview grid refreshed in a loop; its
  refusals over quota are counted under their own name.
- CatalogueRescoringJob: a batch job re-scoring the catalogue with the same INT8 ranker
  the route uses (batch 1024). It shares a model with the route, so Triton's priority
  levels decide who goes first.
- TranscriptionBatchJob: an archive being subtitled: a 60-second espeak-ng clip at a
  time through `transcribe_int8` (Whisper tiny.en), when that route is loaded.
- ModerationBatchJob: a backlog of comments through `moderate_text` (32 per request),
  when that route is loaded.

Batch users send Triton priority `MARQUEE_BATCH_PRIORITY` (default 0: the model's
default level); `perf/bench_surge.py` sets 2 when the server is tuned for the surge, and
`perf/bench_isolation.py` the `batch` surface's priority. The routes' batch users name the
`batch` surface.
"""

from __future__ import annotations

import os
import time

import numpy as np
from locust import constant, constant_throughput, task
from locust.exception import StopUser

from perf.load.triton_user import TritonGrpcUser

N_USERS = 10_000
N_ITEMS = 100_000
N_REGIONS = 8
BATCH_ROWS = 1024


def batch_priority() -> int:
    return int(os.environ.get("MARQUEE_BATCH_PRIORITY", "0"))


class HomePageViewer(TritonGrpcUser):
    # A viewer opens a page, looks at it, scrolls: about 4 pages a second each.
    wait_time = constant_throughput(4)

    def on_start(self) -> None:
        from clients.recommend import RecommendClient

        self.rng = np.random.default_rng(self.environment.runner.user_count if self.environment.runner else 0)
        # MARQUEE_RECOMMEND_MODEL: another deployment of the route (an A/B variant, say).
        model = os.environ.get("MARQUEE_RECOMMEND_MODEL", "recommend")
        self.client = RecommendClient(self.grpc_url, timeout_s=2.0, model=model, surface="home")

    @task
    def home_page(self) -> None:
        user = int(self.rng.integers(N_USERS))
        history = self.rng.integers(N_ITEMS, size=10)
        self.timed(
            "recommend",
            self.client.recommend,
            user,
            region=user % N_REGIONS,
            history=history,
            n=20,
            device=int(self.rng.integers(4)),
            hour=int(self.rng.integers(24)),
        )

    def on_stop(self) -> None:
        self.client.close()


class CreatorToolsFlood(TritonGrpcUser):
    """Back-to-back pages for an internal tool; `MARQUEE_CREATOR_USERS` of them (default 4)."""

    fixed_count = int(os.environ.get("MARQUEE_CREATOR_USERS", "4"))
    wait_time = constant(0)

    def on_start(self) -> None:
        from clients.recommend import RecommendClient

        self.rng = np.random.default_rng(1000 + (self.environment.runner.user_count if self.environment.runner else 0))
        self.client = RecommendClient(self.grpc_url, timeout_s=2.0, surface="creator_tools")

    @task
    def preview_grid(self) -> None:
        from marquee.errors import QuotaExceededError

        user = int(self.rng.integers(N_USERS))
        start = time.perf_counter()
        try:
            self.timed_or_raise("creator_tools: recommend", self.client.recommend, user, user % N_REGIONS, (), 20)
        except QuotaExceededError as refusal:
            # A refusal is the quota working, not a failure: counted apart, and the tool
            # waits as told instead of retrying at once.
            self.report("creator_tools: refused over quota", start, None)
            time.sleep(refusal.retry_after_s or 0.05)

    def on_stop(self) -> None:
        self.client.close()


class _RankerBatchJob(TritonGrpcUser):
    abstract = True
    fixed_count = 1  # one job each, however many viewers the shape asks for
    wait_time = constant(0)
    precision = "int8"
    label = ""
    model_variable = ""  # environment variable naming another deployment to call

    def on_start(self) -> None:
        from clients.ranker import RankerClient
        from export.ranker.data import SyntheticWorld

        rows = SyntheticWorld(0).sample(BATCH_ROWS, seed=7)
        self.categorical, self.dense = rows.categorical, rows.dense
        self.client = RankerClient(
            self.grpc_url,
            precision=self.precision,
            timeout_s=30.0,
            priority=batch_priority(),
            model=os.environ.get(self.model_variable) if self.model_variable else None,
        )

    @task
    def score_batch(self) -> None:
        self.timed(self.label, self.client.score, self.categorical, self.dense)

    def on_stop(self) -> None:
        self.client.close()


class CatalogueRescoringJob(_RankerBatchJob):
    precision = "int8"
    model_variable = "MARQUEE_RESCORING_MODEL"
    label = "batch: catalogue rescoring (ranker_int8 x1024)"


class TranscriptionBatchJob(TritonGrpcUser):
    fixed_count = 1
    wait_time = constant(0)
    route = "transcribe_int8"

    def on_start(self) -> None:
        from clients.transcription import TranscriptionClient
        from marquee.transcription import speech

        self.client = TranscriptionClient(
            self.grpc_url, model=self.route, timeout_s=120.0, priority=batch_priority(), surface="batch"
        )
        if not self.client.is_ready():
            self.client.close()
            raise StopUser()
        self.clip = speech.long_clip(min_seconds=60).wav

    @task
    def transcribe_archive(self) -> None:
        self.timed(f"batch: transcription ({self.route}, 60 s clips)", self.client.transcribe, self.clip)

    def on_stop(self) -> None:
        self.client.close()


class ModerationBatchJob(TritonGrpcUser):
    fixed_count = 1
    wait_time = constant(0)
    texts_per_request = 32

    def on_start(self) -> None:
        import tritonclient.grpc as grpcclient

        self.client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            loaded = self.client.is_model_ready("moderate_text")
        except Exception:  # noqa: BLE001 - an unreachable server is reported by the other users
            loaded = False
        if not loaded:
            raise StopUser()
        texts = [f"comment number {i} about last night's episode, loved the ending" for i in range(32)]
        self.inputs = [grpcclient.InferInput("text", [len(texts)], "BYTES")]
        self.inputs[0].set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))

    @task
    def moderate_backlog(self) -> None:
        self.timed(
            "batch: moderation backlog (moderate_text x32)",
            self.client.infer,
            "moderate_text",
            self.inputs,
            client_timeout=30.0,
            priority=batch_priority(),
            parameters={"surface": "batch"},
        )


BACKGROUND = (CatalogueRescoringJob, TranscriptionBatchJob, ModerationBatchJob)
