"""locust scenarios for Marquee's routes (`locust -f perf/load/scenarios.py`)."""
