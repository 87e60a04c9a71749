"""The locust scenarios drive a real server: every user class gets answers, none fail."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]


def _locust(grpc_url: str, users: list[str], count: int, csv_prefix: Path, env: dict | None = None) -> dict:
    command = [
        sys.executable, "-m", "locust", "-f", "perf/load/scenarios.py", "--host", grpc_url, "--headless",
        "-u", str(count), "-r", str(count), "-t", "4s", "--csv", str(csv_prefix), "--only-summary", *users,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=90, env=env)
    except subprocess.TimeoutExpired:
        # Seen once in CI on a 2-core host saturated by other jobs: locust's process did not
        # exit (a greenlet stuck in gRPC's C core cannot be killed). A second hang fails.
        done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=90, env=env)
    stats = Path(f"{csv_prefix}_stats.csv")
    assert stats.is_file(), done.stderr[-2000:]
    with stats.open() as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_viewers_and_a_batch_job_get_answers(triton, tmp_path):
    rows = _locust(triton.grpc_url, ["HomePageViewer", "CatalogueRescoringJob"], 3, tmp_path / "mixed")
    pages = rows["recommend"]
    batches = rows["batch: catalogue rescoring (ranker_int8 x1024)"]
    # Two viewers at up to 4 pages/s for 4 s, next to a batch job that keeps both cores
    # busy. How many pages they get is a speed figure (perf/bench_isolation.py measures
    # it); a fresh 2-core CI host once gave 7. This test asks that both get answers.
    assert int(pages["Request Count"]) >= 2, pages
    assert int(batches["Request Count"]) >= 1, batches
    assert pages["Failure Count"] == "0" and batches["Failure Count"] == "0", rows


def test_a_failing_call_is_a_locust_failure_not_a_crash(triton, tmp_path):
    # The route is not served under this name: every page must be counted as a failure.
    import os

    env = {**os.environ, "MARQUEE_RECOMMEND_MODEL": "no_such_route"}
    rows = _locust(triton.grpc_url, ["HomePageViewer"], 1, tmp_path / "failing", env=env)
    pages = rows["recommend"]
    assert int(pages["Request Count"]) >= 2
    assert pages["Failure Count"] == pages["Request Count"]
