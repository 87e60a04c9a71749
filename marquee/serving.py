"""What `marquee serve` and `marquee up` do: choose models, run the server, describe it."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import tritonclient.http as httpclient
from rich.table import Table

from marquee.errors import ServerError
from marquee.paths import cache_dir
from marquee.render import parse
from marquee.server.process import ServerPorts, TritonServer, http_ready

log = logging.getLogger(__name__)


def exported_models(repository: Path) -> tuple[list[str], list[str]]:
    """Models whose version directory holds an export (ensembles need only the directory),
    and the models that have a config but no export yet."""
    ready, missing = [], []
    for config in sorted(repository.glob("*/config.pbtxt")):
        model_dir = config.parent
        ensemble = parse(config.read_text()).platform == "ensemble"
        versions = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        exported = any(ensemble or any(v.iterdir()) for v in versions)
        (ready if exported else missing).append(model_dir.name)
    return ready, missing


def default_log_path() -> Path:
    return cache_dir() / "logs" / "tritonserver.log"


def start_embedded(repository: Path, ports: ServerPorts, log_path: Path) -> TritonServer:
    ready, missing = exported_models(repository)
    if missing:
        log.warning("not loading %s: no exported version (run `marquee export ...`)", ", ".join(missing))
    if not ready:
        raise ServerError(f"no exported models in {repository}; run `marquee export ranker` first")
    return TritonServer(repository, ports, log_path=log_path, models=ready).start()


def models_table(http_url: str) -> Table:
    client = httpclient.InferenceServerClient(http_url)
    table = Table(title=f"Triton at {http_url}")
    for column in ("model", "version", "state", "inputs", "outputs"):
        table.add_column(column)
    for entry in client.get_model_repository_index():
        name, state = entry["name"], entry.get("state", "")
        inputs = outputs = ""
        if state == "READY":
            meta = client.get_model_metadata(name)
            inputs = ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in meta["inputs"])
            outputs = ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in meta["outputs"])
        table.add_row(name, entry.get("version", ""), state, inputs, outputs)
    client.close()
    return table


def endpoints_table(http_url: str, grpc_url: str, metrics_url: str) -> Table:
    table = Table(title="Endpoints")
    table.add_column("protocol")
    table.add_column("address")
    table.add_row("HTTP/REST (KServe v2)", f"http://{http_url}")
    table.add_row("gRPC (KServe v2)", grpc_url)
    table.add_row("Prometheus metrics", metrics_url)
    return table


def wait_until_signalled(server: TritonServer) -> None:
    """Block until Ctrl-C or SIGTERM, or until the server dies; then stop it cleanly."""

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    # Installed explicitly: a backgrounded process inherits SIGINT as ignored.
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while server.alive():
            time.sleep(0.5)
        raise ServerError(f"tritonserver exited with code {server.process.returncode}; log {server.log_path}")
    except KeyboardInterrupt:
        log.info("stopping tritonserver ...")
    finally:
        # A second Ctrl-C while Triton drains must not abandon it half-stopped.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def warm_up_recommend(grpc_url: str, pages: int | None = None, model: str = "recommend") -> None:
    """Each route instance's first pages pay for lazy initialisation in its Python stub
    and come back degraded; spend them before anyone is looking."""
    from clients.recommend import RecommendClient
    from marquee.specs.recommend import RECOMMEND

    pages = pages or 2 * sum(group.count for group in RECOMMEND.instance_groups)
    with RecommendClient(grpc_url, model=model) as client:
        for user in range(pages):
            client.recommend(user, region=0, history=(), n=5)


def require_ready(http_url: str) -> None:
    if not http_ready(http_url, timeout=3.0):
        raise ServerError(f"no ready Triton server at http://{http_url}/v2/health/ready")
