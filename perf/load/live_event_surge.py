"""locust: a live event multiplies home-page viewers while the batch jobs keep running."""

from locust import LoadTestShape

from perf.load.scenarios import (  # noqa: F401 - locust finds the users in this module
    BACKGROUND,
    CatalogueRescoringJob,
    HomePageViewer,
    ModerationBatchJob,
    TranscriptionBatchJob,
)


class LiveEventSurge(LoadTestShape):
    """A live event starts: viewers jump from 2 to 6 while the batch jobs keep running.

    (start s, viewers) steps; one of each batch job throughout.
    """

    steps = ((0, 2), (20, 6), (60, None))

    def tick(self):
        now = self.get_run_time()
        viewers = None
        for start, count in self.steps:
            if now >= start:
                viewers = count
        if viewers is None:
            return None
        return viewers + len(BACKGROUND), 10, [HomePageViewer, *BACKGROUND]
