"""Start, watch and stop a `tritonserver` process."""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from marquee.errors import ServerError
from marquee.server.embedded import build_backend_directory, server_environment, tritonserver_binary
from marquee.server.security import (
    DEFAULT_ADDRESS,
    AdminKey,
    GrpcTls,
    check_bind_address,
    connect_host,
    is_loopback,
    resolve_admin_key,
)
from marquee.server.stub_watchdog import StubWatchdog
from marquee.surfaces import SURFACE_HEADER

log = logging.getLogger(__name__)


# What tritonserver prints when the Python backend's shared-memory lock race aborts it.
_LOAD_RACE_SIGNATURE = "boost::interprocess::lock_exception"


class _LoadRaceCrash(ServerError):
    """tritonserver aborted on the Python backend's load race before becoming ready."""


@dataclass(frozen=True)
class ServerPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def surface_header_args() -> list[str]:
    """Triton forwards the `marquee-surface` header (HTTP) / metadata (gRPC) to the routes as
    a request parameter, so a caller behind the gateway names its surface once, in the
    header the gateway's quotas key on. Header names are case-insensitive in HTTP."""
    pattern = f"(?i)^{SURFACE_HEADER}$"
    return [f"--http-header-forward-pattern={pattern}", f"--grpc-header-forward-pattern={pattern}"]


def free_ports() -> ServerPorts:
    sockets = [socket.socket() for _ in range(3)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        http, grpc, metrics = (s.getsockname()[1] for s in sockets)
    finally:
        for s in sockets:
            s.close()
    return ServerPorts(http=http, grpc=grpc, metrics=metrics)


def _die_with_parent() -> None:
    """Runs in the child before exec: if Marquee is killed outright, take tritonserver along
    instead of leaving an orphan holding the ports."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def http_ready(http_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return "(no server log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class TritonServer:
    """The embedded tritonserver as a subprocess, ready when `start()` returns.

    `models=None` loads every model in the repository; a list switches Triton to
    explicit model control and loads only those.

    Secure by default: HTTP, gRPC and metrics bind `address` (127.0.0.1), and the
    model-repository, shared-memory, logging and trace APIs need `admin_key` (default:
    $MARQUEE_ADMIN_KEY, or a key generated into .marquee/admin.key). `grpc_tls` turns on
    TLS for gRPC.

    `python_env`: a virtual environment of this Python version that the Python models run
    in instead of this one (see `server_environment`); default: this environment. With
    one, tritonserver also runs in its own work directory: the stub puts its working
    directory on sys.path, where the project's packages would otherwise be importable.

    `restart_dead_stubs`: watch the Python stubs and reload a model whose stub died, which
    Triton 2.51 does not do by itself (see stub_watchdog.py). Needs explicit model control.
    """

    def __init__(
        self,
        repository: Path,
        ports: ServerPorts | None = None,
        log_path: Path | None = None,
        models: list[str] | None = None,
        extra_args: tuple[str, ...] = (),
        address: str = DEFAULT_ADDRESS,
        admin_key: AdminKey | None = None,
        grpc_tls: GrpcTls | None = None,
        python_env: Path | None = None,
        restart_dead_stubs: bool = False,
    ):
        self.repository = Path(repository).resolve()
        self.ports = ports or ServerPorts()
        self.models = models
        self.extra_args = extra_args
        self.address = check_bind_address(address)
        self.admin_key = admin_key or resolve_admin_key(create=True)
        self.grpc_tls = grpc_tls
        self.python_env = Path(python_env) if python_env is not None else None
        self._workdir = Path(tempfile.mkdtemp(prefix="marquee-triton-"))
        self.log_path = Path(log_path) if log_path else self._workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None
        if restart_dead_stubs and models is None:
            raise ValueError("restart_dead_stubs reloads models through the repository API: it needs `models` "
                             "(explicit model control)")  # fmt: skip
        self.restart_dead_stubs = restart_dead_stubs
        self.watchdog: StubWatchdog | None = None

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.address)

    @property
    def http_url(self) -> str:
        return f"{connect_host(self.address)}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{connect_host(self.address)}:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{connect_host(self.address)}:{self.ports.metrics}/metrics"

    def command(self, backend_dir: Path) -> list[str]:
        command = [
            str(tritonserver_binary()),
            f"--model-repository={self.repository}",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.address}",
            f"--http-port={self.ports.http}",
            f"--grpc-address={self.address}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-address={self.address}",
            f"--metrics-port={self.ports.metrics}",
            "--allow-cpu-metrics=true",
            "--exit-on-error=true",
            "--strict-readiness=true",
            *surface_header_args(),
        ]
        # The key is on tritonserver's command line (Triton reads it nowhere else): never
        # log this list. Triton itself does not print it.
        command += self.admin_key.server_args()
        if self.grpc_tls is not None:
            command += self.grpc_tls.server_args()
        if self.models is not None:
            command.append("--model-control-mode=explicit")
            command += [f"--load-model={name}" for name in self.models]
        return command + list(self.extra_args)

    def start(self, timeout: float = 120.0) -> TritonServer:
        try:
            self._launch(timeout)
        except _LoadRaceCrash:
            # The Python backend's shared-memory lock can abort tritonserver with
            # `boost::interprocess::lock_exception`: upstream reports it under concurrent
            # BLS load (triton-inference-server/server#8882, open through 2.69); CI saw it
            # once while ~60 Python-backend models loaded at once, and the same start then
            # passed. So start once more, keeping the first log.
            crashed_log = self.log_path.with_suffix(".crashed.log")
            self.log_path.replace(crashed_log)
            log.warning(
                "tritonserver aborted while loading models (Python backend race, "
                "triton-inference-server/server#8882); starting it once more. First log: %s",
                crashed_log,
            )
            self._launch(timeout)
        if self.restart_dead_stubs:
            self.watchdog = StubWatchdog(self.process.pid, self.http_url, self.admin_key).start()
        return self

    def _launch(self, timeout: float) -> None:
        backend_dir = build_backend_directory(self._workdir / "backends")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("w")
        log.info(
            "starting tritonserver on %s: http=%d grpc=%d%s metrics=%d",
            self.address,
            self.ports.http,
            self.ports.grpc,
            " (TLS)" if self.grpc_tls else "",
            self.ports.metrics,
        )
        if not self.loopback_only:
            log.warning("tritonserver binds %s: reachable from other hosts, not only this one", self.address)
        self.process = subprocess.Popen(
            self.command(backend_dir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=server_environment(self.python_env),
            cwd=self._workdir if self.python_env is not None else None,
            preexec_fn=_die_with_parent,
        )
        log_file.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                crash = _LoadRaceCrash if _LOAD_RACE_SIGNATURE in log_tail(self.log_path) else ServerError
                raise crash(
                    f"tritonserver exited with code {self.process.returncode} before becoming ready; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if http_ready(self.http_url):
                return
            time.sleep(0.25)
        self.stop()
        raise ServerError(
            f"tritonserver not ready after {timeout:.0f}s; log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM lets Triton drain in-flight requests and unload models; kill after `grace`."""
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver did not stop within %.0fs; killing it", grace)
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
