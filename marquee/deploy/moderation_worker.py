"""The moderation queue worker as its own Deployment, on Redis Streams.

It runs `marquee moderation worker` against the moderation workload's gRPC Service. The
Redis URL comes from Secret `marquee-moderation-queue` into $MARQUEE_MODERATION_QUEUE,
which the worker reads as its default `--store` (marquee/moderation/queue): the same
command as `--store redis://...`, without the URL, which may hold a password, on the
process's command line.
"""

from __future__ import annotations

from marquee.deploy.documents import Document, labels, metadata, selector
from marquee.deploy.settings import QUEUE_SECRET, QUEUE_SECRET_KEY, DeploySettings
from marquee.deploy.triton_args import PORTS, TLS_MOUNT
from marquee.deploy.triton_deployment import container_security_context, pod_security_context, service_name
from marquee.deploy.workloads import get_workload

NAME = "moderation-worker"
QUEUE_ENV = "MARQUEE_MODERATION_QUEUE"
TLS_CA_ENV = "MARQUEE_GRPC_TLS_CA"  # clients/base.py: the CA for gRPC over TLS
WORKER_UID = 65532  # an unprivileged uid with no account in the image; it needs none
LEASE_S = 60
TIMEOUT_S = 30


def triton_grpc_address(settings: DeploySettings) -> str:
    moderation = get_workload("moderation")
    return f"{service_name(moderation, 'grpc')}.{settings.namespace}.svc:{PORTS.grpc}"


def worker_args(settings: DeploySettings) -> list[str]:
    return [
        "moderation",
        "worker",
        "--url",
        triton_grpc_address(settings),
        "--batch-size",
        "16",
        # The lease outlives a request's timeout, so a slow batch is not taken over and
        # judged twice (the worker warns when it is not).
        "--lease",
        str(LEASE_S),
        "--timeout",
        str(TIMEOUT_S),
    ]


def worker_env(settings: DeploySettings) -> list[dict]:
    env = [
        {"name": QUEUE_ENV, "valueFrom": {"secretKeyRef": {"name": QUEUE_SECRET, "key": QUEUE_SECRET_KEY}}},
        # Nothing is cached with a Redis queue, but keep Marquee's cache dir writable.
        {"name": "MARQUEE_CACHE", "value": "/tmp/marquee"},
    ]
    if settings.grpc_tls:
        env.append({"name": TLS_CA_ENV, "value": f"{TLS_MOUNT}/ca.crt"})
    return env


def worker_pod_spec(settings: DeploySettings) -> dict:
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if settings.grpc_tls:
        volumes.append(
            {
                "name": "grpc-tls",
                "secret": {"secretName": settings.grpc_tls_secret, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
            }
        )
        mounts.append({"name": "grpc-tls", "mountPath": TLS_MOUNT, "readOnly": True})
    container = {
        "name": "worker",
        "image": settings.worker_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["marquee"],
        "args": worker_args(settings),
        "env": worker_env(settings),
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {**container_security_context(), "readOnlyRootFilesystem": True},
        "volumeMounts": mounts,
    }
    return {
        # SIGTERM: the worker finishes the batch in hand (one request, --timeout) and exits.
        "terminationGracePeriodSeconds": TIMEOUT_S + 30,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(WORKER_UID),
        "containers": [container],
        "volumes": volumes,
    }


def worker_deployment(settings: DeploySettings) -> Document:
    object_labels = labels("moderation-worker", NAME, NAME)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(NAME, settings.namespace, object_labels),
        "spec": {
            # Leases make more workers safe: a dead worker's batch is reclaimed when its
            # lease expires, and the first decision recorded wins.
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(NAME)},
            "template": {"metadata": {"labels": object_labels}, "spec": worker_pod_spec(settings)},
        },
    }
    comment = (
        "The moderation queue worker (`marquee moderation worker`, Redis Streams) calling the\n"
        f"moderation routes at {triton_grpc_address(settings)}. Create Secret `{QUEUE_SECRET}` first:\n"
        f"key `{QUEUE_SECRET_KEY}` = redis://[:password@]host:6379/0 (Redis itself is not part of these manifests).\n"
        "The URL reaches the worker as $MARQUEE_MODERATION_QUEUE, its default --store, so a password\n"
        "in it never appears on the command line."
    )
    return Document(body, comment)
