"""`marquee top`: a live terminal view of a Triton running Marquee, from its /metrics.

- `scrape`: the Prometheus text format into typed samples, and fetching it;
- `rates`: window math (rates, histogram quantiles, ratios) and the rows shown;
- `snapshot`: two scrapes and the window between them;
- `view`: the rich tables;
- `cli`: the `top` command (`top_command`).
"""
