"""locust: steady mixed traffic (viewers and every batch job) against one server."""

from locust import LoadTestShape

from perf.load.scenarios import (  # noqa: F401 - locust finds the users in this module
    BACKGROUND,
    CatalogueRescoringJob,
    HomePageViewer,
    ModerationBatchJob,
    TranscriptionBatchJob,
)


class SteadyMixed(LoadTestShape):
    """Two viewers' worth of pages plus one of each batch job, for `run_time` seconds."""

    run_time = 60

    def tick(self):
        if self.get_run_time() > self.run_time:
            return None
        return 2 + len(BACKGROUND), 10, [HomePageViewer, *BACKGROUND]
