"""What Marquee gives Prometheus: recording and alert rules rendered from the code that
knows the metric names, the routes' latency budgets (marquee/specs) and the surfaces
(policies/surfaces.yaml), so none of them can drift (`rules.py`)."""
