"""One workload class as Kubernetes objects: its Triton Deployment, Services and PodDisruptionBudget."""

from __future__ import annotations

from marquee.deploy.documents import Document, labels, metadata, selector
from marquee.deploy.settings import ADMIN_KEY_SECRET, ADMIN_KEY_SECRET_KEY, DeploySettings
from marquee.deploy.targets import GPU_RESOURCE
from marquee.deploy.triton_args import PORTS, TLS_MOUNT, pod_args
from marquee.deploy.workloads import Workload
from marquee.server.security import ADMIN_KEY_ENV

TRITON_NAME = "triton"
CONTAINER_NAME = "tritonserver"
# The NGC image's non-root user (uid 1000, as in Triton's own k8s-onprem chart).
TRITON_UID = 1000
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
STARTUP_PERIOD_S = 10
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(PORTS.metrics),
    "prometheus.io/path": "/metrics",
}


def workload_labels(workload: Workload) -> dict[str, str]:
    return labels(workload.name, workload.deployment_name, TRITON_NAME)


def container_ports() -> list[dict]:
    return [
        {"name": "http", "containerPort": PORTS.http, "protocol": "TCP"},
        {"name": "grpc", "containerPort": PORTS.grpc, "protocol": "TCP"},
        {"name": "metrics", "containerPort": PORTS.metrics, "protocol": "TCP"},
    ]


def admin_key_env() -> dict:
    return {
        "name": ADMIN_KEY_ENV,
        "valueFrom": {"secretKeyRef": {"name": ADMIN_KEY_SECRET, "key": ADMIN_KEY_SECRET_KEY}},
    }


def resources(workload: Workload, settings: DeploySettings) -> dict:
    requests = {"cpu": workload.resources.cpu, "memory": workload.resources.memory}
    limits = {"memory": workload.resources.memory}
    if settings.target.uses_gpu:
        # Extended resources are whole units; request and limit must be equal.
        gpus = str(settings.target.gpus_per_pod)
        requests[GPU_RESOURCE] = gpus
        limits[GPU_RESOURCE] = gpus
    return {"requests": requests, "limits": limits}


def probes(workload: Workload) -> dict:
    def http_get(path: str) -> dict:
        return {"httpGet": {"path": path, "port": "http"}}

    return {
        # Model loading (TensorRT plans, Whisper) takes minutes; until this passes, the
        # liveness probe does not run and cannot kill a pod that is still loading.
        "startupProbe": {
            **http_get(READY_PATH),
            "periodSeconds": STARTUP_PERIOD_S,
            "timeoutSeconds": 5,
            "failureThreshold": workload.startup_budget_s // STARTUP_PERIOD_S,
        },
        "readinessProbe": {**http_get(READY_PATH), "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {**http_get(LIVE_PATH), "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
    }


def volumes_and_mounts(workload: Workload, settings: DeploySettings) -> tuple[list[dict], list[dict]]:
    # Docker's and the kubelet's default /dev/shm is 64 MiB; the Python backend moves every
    # route's tensors through shared memory, so it gets a memory-backed volume of its own.
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": workload.resources.shared_memory}}]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    volumes += settings.repository.volumes()
    mounts += settings.repository.volume_mounts()
    if settings.grpc_tls:
        volumes.append({"name": "grpc-tls", "secret": {"secretName": settings.grpc_tls_secret}})
        mounts.append({"name": "grpc-tls", "mountPath": TLS_MOUNT, "readOnly": True})
    return volumes, mounts


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod_security_context(uid: int) -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def triton_container(workload: Workload, settings: DeploySettings) -> dict:
    _, mounts = volumes_and_mounts(workload, settings)
    container = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        # `args`, not `command`: NVIDIA's entrypoint stays in front of tritonserver.
        "args": ["tritonserver", *pod_args(settings.repository.server_path, workload.model_names(), settings.grpc_tls)],
        "env": [admin_key_env()],
    }
    env_from = settings.repository.env_from()
    if env_from:
        container["envFrom"] = env_from
    container["ports"] = container_ports()
    container["resources"] = resources(workload, settings)
    container.update(probes(workload))
    container["securityContext"] = container_security_context()
    container["volumeMounts"] = mounts
    return container


def pod_spec(workload: Workload, settings: DeploySettings) -> dict:
    volumes, _ = volumes_and_mounts(workload, settings)
    spec: dict = {
        # Triton's --exit-timeout-secs (30) plus room for the kubelet.
        "terminationGracePeriodSeconds": 45,
        # Triton never calls the Kubernetes API, and service env vars are noise to it.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(TRITON_UID),
    }
    if settings.target.uses_gpu:
        # GPU node pools are commonly tainted so that only GPU pods land there.
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    spec["containers"] = [triton_container(workload, settings)]
    spec["volumes"] = volumes
    return spec


DEPLOYMENT_COMMENT = """\
Triton for the {name} workload: {description}.
Loads exactly these models (explicit model control): {models}.
- No `replicas`: the HorizontalPodAutoscaler owns the count; a value here would reset it
  on every `kubectl apply`.
- Binds 0.0.0.0 inside the pod (probes and Services reach the pod IP); the ClusterIP
  Services below decide exposure, and nothing outside the cluster reaches them.
- The restricted APIs (model-repository, shared-memory, logging, trace) need the header
  `marquee-admin-key`. The key comes from Secret `{secret}` through $(MARQUEE_ADMIN_KEY):
  the pod spec holds only the reference, but the expanded key is on tritonserver's
  command line in the container, readable by whoever can exec into the pod or read
  /proc on its node.
- Rolling updates add a pod before removing one (maxUnavailable 0); on a GPU pool that
  needs one spare GPU per class."""


def deployment(workload: Workload, settings: DeploySettings) -> Document:
    object_labels = workload_labels(workload)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(workload.deployment_name, settings.namespace, object_labels),
        "spec": {
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": selector(workload.deployment_name)},
            "template": {
                "metadata": {"labels": object_labels, "annotations": dict(SCRAPE_ANNOTATIONS)},
                "spec": pod_spec(workload, settings),
            },
        },
    }
    comment = DEPLOYMENT_COMMENT.format(
        name=workload.name,
        description=workload.description,
        models=", ".join(workload.model_names()),
        secret=ADMIN_KEY_SECRET,
    )
    return Document(body, comment)


SERVICE_COMMENTS = {
    "http": "HTTP/REST (KServe v2 protocol) for {name}; ClusterIP: reachable inside the cluster only.",
    "grpc": (
        "gRPC for {name}. A ClusterIP Service balances connections, not requests, and gRPC keeps its\n"
        "connection: clients that must spread load over new pods reconnect now and then or balance\n"
        "client-side. TLS: {tls}."
    ),
    "metrics": (
        "Prometheus metrics (:8002/metrics) for {name}. Scraping goes by the pod annotations\n"
        "(prometheus.io/*) or the PodMonitor in monitoring/, not by this Service: the autoscaling\n"
        "rule needs each series labelled with its pod, and scraping here too would count it twice."
    ),
}


def service_name(workload: Workload, port: str) -> str:
    return f"{workload.deployment_name}-{port}"


def service(workload: Workload, settings: DeploySettings, port_name: str) -> Document:
    number = {"http": PORTS.http, "grpc": PORTS.grpc, "metrics": PORTS.metrics}[port_name]
    port: dict = {"name": port_name, "port": number, "targetPort": port_name, "protocol": "TCP"}
    if port_name == "grpc":
        port["appProtocol"] = "grpc"
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(service_name(workload, port_name), settings.namespace, workload_labels(workload)),
        "spec": {"type": "ClusterIP", "selector": selector(workload.deployment_name), "ports": [port]},
    }
    tls = f"on, certificate from Secret `{settings.grpc_tls_secret}`" if settings.grpc_tls else "off (plain text)"
    return Document(body, SERVICE_COMMENTS[port_name].format(name=workload.name, tls=tls))


def disruption_budget(workload: Workload, settings: DeploySettings) -> Document:
    body = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(f"{workload.deployment_name}-pdb", settings.namespace, workload_labels(workload)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(workload.deployment_name)},
            # A pod that never became ready may be evicted: it serves nothing anyway.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
    comment = (
        f"Voluntary disruptions (node drains, upgrades) take down at most one {workload.name} pod at a\n"
        "time. maxUnavailable rather than minAvailable: with a single replica a drain still\n"
        "proceeds instead of blocking forever."
    )
    return Document(body, comment)


def workload_documents(workload: Workload, settings: DeploySettings) -> list[Document]:
    return [
        deployment(workload, settings),
        service(workload, settings, "http"),
        service(workload, settings, "grpc"),
        service(workload, settings, "metrics"),
        disruption_budget(workload, settings),
    ]
