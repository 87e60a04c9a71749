"""Measuring served models: perf_analyzer (and, later, locust) against budgets."""
