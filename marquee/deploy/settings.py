"""What a user chooses when rendering manifests; everything else follows from the specs."""

from __future__ import annotations

from dataclasses import dataclass

from marquee.deploy.repository_source import RepositorySource, parse_repository_uri
from marquee.deploy.targets import ClusterTarget, get_target

ADMIN_KEY_SECRET = "marquee-admin-key"  # key `key`: the restricted-API key
QUEUE_SECRET = "marquee-moderation-queue"  # key `url`: redis://[:password@]host:port/db
ADMIN_KEY_SECRET_KEY = "key"
QUEUE_SECRET_KEY = "url"


@dataclass(frozen=True)
class DeploySettings:
    target: ClusterTarget
    image: str  # built from deploy/Dockerfile: NGC tritonserver + route requirements + repository
    repository: RepositorySource
    worker_image: str  # built from deploy/worker.Dockerfile: the `marquee` CLI
    namespace: str = "marquee"
    # A kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) turns on gRPC TLS; None keeps
    # gRPC in plain text inside the cluster (the Services are ClusterIP only).
    grpc_tls_secret: str | None = None
    # Where KEDA queries Prometheus (prometheus-operator's default Service name).
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"

    @property
    def grpc_tls(self) -> bool:
        return self.grpc_tls_secret is not None


def make_settings(
    target: str,
    image: str,
    model_repository_uri: str,
    worker_image: str,
    **options: str | None,
) -> DeploySettings:
    return DeploySettings(
        target=get_target(target),
        image=image,
        repository=parse_repository_uri(model_repository_uri),
        worker_image=worker_image,
        **options,
    )
