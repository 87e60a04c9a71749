"""The `tritonserver` command line of a pod, with the flags the embedded server uses.

The restricted-API flags come from `marquee.server.security.AdminKey.server_args()`, the
same code the embedded server uses, so the header name and API list cannot drift. In a
pod the key is `$(MARQUEE_ADMIN_KEY)`: Kubernetes expands it from an environment
variable that a Secret fills. The pod spec holds only that reference; the expanded key
is on tritonserver's command line inside the container (Triton reads it nowhere else),
so whoever can exec into the pod or read /proc on its node can read the key.
"""

from __future__ import annotations

from marquee.server.process import ServerPorts, surface_header_args
from marquee.server.security import ADMIN_KEY_ENV, AdminKey

PORTS = ServerPorts()  # 8000 http, 8001 grpc, 8002 metrics, as on the embedded server
ADMIN_KEY_REFERENCE = f"$({ADMIN_KEY_ENV})"  # expanded by the kubelet from the container's env
# Inside a pod, Triton must listen on the pod's interface: kubelet probes and Services
# reach the pod IP, not its loopback. Exposure is decided by the Service (ClusterIP here,
# so nothing outside the cluster reaches it), not by the bind address.
POD_BIND_ADDRESS = "0.0.0.0"
TLS_MOUNT = "/tls"  # a kubernetes.io/tls Secret: tls.crt, tls.key (and ca.crt for clients)


def restricted_api_args() -> list[str]:
    return AdminKey(ADMIN_KEY_REFERENCE, source="Kubernetes Secret").server_args()


def listen_args(http: int = PORTS.http, grpc: int = PORTS.grpc, metrics: int = PORTS.metrics) -> list[str]:
    return [
        f"--http-address={POD_BIND_ADDRESS}",
        f"--http-port={http}",
        f"--grpc-address={POD_BIND_ADDRESS}",
        f"--grpc-port={grpc}",
        f"--metrics-address={POD_BIND_ADDRESS}",
        f"--metrics-port={metrics}",
    ]


def behaviour_args() -> list[str]:
    return [
        # CPU and memory series on /metrics on every node kind (GPU series come anyway).
        "--allow-cpu-metrics=true",
        # A model that fails to load stops the pod (CrashLoopBackOff, log says why)
        # instead of leaving a pod that is alive but never ready.
        "--exit-on-error=true",
        # /v2/health/ready only when every loaded model is ready: the readiness probe.
        "--strict-readiness=true",
        # On SIGTERM Triton stops taking requests and drains in-flight ones this long;
        # terminationGracePeriodSeconds leaves time beyond it.
        "--exit-timeout-secs=30",
        *surface_header_args(),
    ]


def grpc_tls_args() -> list[str]:
    return [
        "--grpc-use-ssl=true",
        f"--grpc-server-cert={TLS_MOUNT}/tls.crt",
        f"--grpc-server-key={TLS_MOUNT}/tls.key",
    ]


def model_control_args(models: list[str]) -> list[str]:
    return ["--model-control-mode=explicit", *[f"--load-model={name}" for name in models]]


def pod_args(repository: str, models: list[str], grpc_tls: bool) -> list[str]:
    """Everything after `tritonserver` for a Deployment's container."""
    return [
        f"--model-repository={repository}",
        *model_control_args(models),
        *listen_args(),
        *behaviour_args(),
        *restricted_api_args(),
        *(grpc_tls_args() if grpc_tls else []),
    ]


def load_model_list(args: list[str]) -> list[str]:
    """The models a command line loads (for checks)."""
    return [arg.removeprefix("--load-model=") for arg in args if arg.startswith("--load-model=")]
