"""What Marquee gives Prometheus and Grafana: recording and alert rules (`rules.py`) and
dashboards (`dashboards.py`), rendered from the code that knows the metric names, the
routes' latency budgets (marquee/specs) and the surfaces (policies/surfaces.yaml), so none
of them can drift. `rendered_files.py` writes and checks the committed files."""
