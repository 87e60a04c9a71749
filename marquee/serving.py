"""What `marquee serve` and `marquee up` do: choose models, run the server, describe it."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import tritonclient.http as httpclient
from rich.table import Table
from tritonclient.utils import InferenceServerException

from marquee.errors import MarqueeError, ServerError
from marquee.paths import admin_key_file, cache_dir
from marquee.render import parse
from marquee.server.process import ServerPorts, TritonServer, http_ready
from marquee.server.security import (
    ADMIN_KEY_ENV,
    ADMIN_KEY_HEADER,
    DEFAULT_ADDRESS,
    GRPC_ADMIN_KEY_HEADER,
    OPEN_APIS,
    RESTRICTED_APIS,
    AdminKey,
    GrpcTls,
    RestrictedApiError,
)

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


def start_embedded(
    repository: Path,
    ports: ServerPorts,
    log_path: Path,
    address: str = DEFAULT_ADDRESS,
    admin_key: AdminKey | None = None,
    grpc_tls: GrpcTls | None = None,
) -> TritonServer:
    ready, missing = exported_models(repository)
    if missing:
        log.warning("not loading %s: no exported version (run `marquee export ...`)", ", ".join(missing))
    if not ready:
        raise ServerError(f"no exported models in {repository}; run `marquee export ranker` first")
    server = TritonServer(
        repository,
        ports,
        log_path=log_path,
        models=ready,
        address=address,
        admin_key=admin_key,
        grpc_tls=grpc_tls,
        restart_dead_stubs=True,
    ).start()
    restore_rollouts(server)
    return server


def restore_rollouts(server: TritonServer) -> None:
    """Rankers load the version their config names; a promoted or running experiment names
    others (marquee/rollout). Load those now, so a restart does not undo a rollout. A
    failure is logged, not raised: the rest of the repository serves, and the route
    answers pages for a version that is not loaded from its fallback (degraded)."""
    from marquee.rollout.commands import restore
    from marquee.rollout.control import ModelControl
    from marquee.rollout.files import deployed_routes

    control = ModelControl(server.http_url, server.admin_key)
    for files in deployed_routes(server.repository):
        try:
            loaded = restore(files, control)
        except (MarqueeError, InferenceServerException) as error:
            log.error("%s: could not load the ranker versions %s names: %s", files.route, files.experiments, error)
            continue
        if loaded:
            log.info("%s: loaded ranker versions %s, as %s names", files.route, loaded, files.experiments)


def _repository_index(client: httpclient.InferenceServerClient, http_url: str, admin_key: AdminKey | None) -> list:
    """The repository index is a restricted API; say how to pass the key when refused."""
    headers = admin_key.http_headers() if admin_key else None
    try:
        return client.get_model_repository_index(headers=headers)
    except InferenceServerException as error:
        if str(error.status()) != "403":
            raise
        if admin_key is None:
            raise RestrictedApiError(
                f"Triton at {http_url} restricts its model-repository API and no admin key was given: "
                f"pass --admin-key-file FILE or set ${ADMIN_KEY_ENV} "
                f"(a local `marquee serve` keeps its key in {admin_key_file()})"
            ) from None
        raise RestrictedApiError(
            f"Triton at {http_url} refused the admin key from {admin_key.source} "
            f"for its model-repository API ({error.message()})"
        ) from None


def models_table(http_url: str, admin_key: AdminKey | None = None) -> Table:
    client = httpclient.InferenceServerClient(http_url)
    table = Table(title=f"Triton at {http_url}")
    for column in ("model", "version", "state", "inputs", "outputs"):
        table.add_column(column)
    index = _repository_index(client, http_url, admin_key)
    ready = {entry["name"] for entry in index if entry.get("state") == "READY"}
    for entry in index:
        name, state = entry["name"], entry.get("state", "")
        inputs = outputs = ""
        if state == "READY":
            meta = client.get_model_metadata(name)
            inputs = ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in meta["inputs"])
            outputs = ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in meta["outputs"])
            missing = [m for m in composed_models(client.get_model_config(name)) if m not in ready]
            if missing:
                state = f"[yellow]READY, degraded: not loaded: {', '.join(missing)}[/]"
        table.add_row(name, entry.get("version", ""), state, inputs, outputs)
    client.close()
    return table


def composed_models(config: dict) -> list[str]:
    """The models a route's config says it cannot do without (its `composes` parameter)."""
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    keys = [key for key in parameters.get("composes", "").split(",") if key]
    return [parameters[key] for key in keys if key in parameters]


def endpoints_table(server: TritonServer) -> Table:
    """Where the server listens, who can reach it, and how the admin APIs take the key."""
    if server.loopback_only:
        reach = f"bound to {server.address}: reachable from this machine only"
    else:
        reach = f"[bold yellow]warning:[/] bound to {server.address}: reachable from other hosts"
    caption = (
        f"{reach}\nadmin APIs (need the key): {', '.join(RESTRICTED_APIS)}\n"
        f"open to all: {', '.join(OPEN_APIS)}, metrics"
    )
    table = Table(title="Endpoints", caption=caption)
    table.add_column("protocol")
    table.add_column("address", overflow="fold")
    table.add_column("admin key goes in", overflow="fold")
    table.add_row("HTTP/REST", f"http://{server.http_url}", f"header {ADMIN_KEY_HEADER}")
    table.add_row("gRPC (TLS)" if server.grpc_tls else "gRPC", server.grpc_url, f"metadata {GRPC_ADMIN_KEY_HEADER}")
    table.add_row("metrics", server.metrics_url, "(open)")
    table.add_row("admin key", server.admin_key.source, "(never printed)")
    return table


def admin_header_example(server: TritonServer) -> str:
    """The curl header argument for the admin key, reading it where it lives (never inline)."""
    key = server.admin_key
    value = f"$(cat {key.path})" if key.path else f"${ADMIN_KEY_ENV}"
    return f'"{ADMIN_KEY_HEADER}: {value}"'


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
