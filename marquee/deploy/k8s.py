"""Kubernetes manifests for Marquee, rendered from the specs: `deploy/k8s/<target>/`.

Why rendered manifests and not a Helm chart: the issue asked for a chart only if a real
`helm` can be installed from the registries this project reaches, so that `helm
template` and `helm lint` could run in the tests. None can: Debian 12 has no `helm`
package (`apt-cache search helm` finds only Emacs' helm), npm has no official Helm
distribution, and PyPI has only third-party, alpha-stage ctypes bindings to Helm's Go
SDK (helm-python-sdk 0.2.2, helm-sdkpy 0.1.32; 47-75 MB wheels around an 85-122 MB
shared library), which are not the `helm` CLI users run. A chart nothing here can
template or lint would be unchecked text; manifests rendered by Python from the same
specs as the model configs are checked in the tests: every object against the
Kubernetes OpenAPI schemas (kubernetes-validate) and the CRDs against schemas written
from their docs, and the committed output against a fresh render (`stale`).

Layout of `deploy/k8s/<target>/` (`kubectl apply -f` on the folder applies the top
level only, which needs no CRD):
    00-namespace.yaml             the namespace
    10-triton-<workload>.yaml     per workload class: Deployment, Services (http, grpc,
                                  metrics), PodDisruptionBudget, HorizontalPodAutoscaler
    20-moderation-worker.yaml     the Redis Streams queue worker
    autoscaling/                  prometheus-adapter Helm values (the HPA's rule);
                                  KEDA ScaledObjects (the alternative autoscaler)
    monitoring/podmonitor.yaml    prometheus-operator alternative to the scrape annotations
    kserve/                       ServingRuntime + InferenceServices for KServe users
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from marquee.deploy.autoscaling import adapter_values, horizontal_autoscaler, scaled_object
from marquee.deploy.documents import Document, ManifestFile, dump_file, labels, metadata
from marquee.deploy.errors import ManifestDriftError
from marquee.deploy.kserve import inference_service, serving_runtime
from marquee.deploy.moderation_worker import worker_deployment
from marquee.deploy.monitoring import pod_monitor
from marquee.deploy.repository_source import IMAGE_REPOSITORY
from marquee.deploy.settings import ADMIN_KEY_SECRET, QUEUE_SECRET, DeploySettings, make_settings
from marquee.deploy.triton_deployment import workload_documents
from marquee.deploy.workloads import WORKLOADS

K8S_ROOT = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
DEFAULT_IMAGE = "marquee-triton:0.1.0"
DEFAULT_WORKER_IMAGE = "marquee-worker:0.1.0"
VALIDATED_AGAINST = "1.33.0"  # the Kubernetes release the tests validate against


def file_header(settings: DeploySettings, checked_by: str = "") -> str:
    checked_by = checked_by or f"validated offline against the Kubernetes {VALIDATED_AGAINST} schemas and CRD schemas"
    return (
        f"Rendered by `marquee deploy render --target {settings.target.name}` from marquee/deploy and\n"
        "marquee/specs; do not edit by hand. Never applied to a cluster by the project (none was\n"
        f"available): {checked_by}."
    )


def namespace_document(settings: DeploySettings) -> Document:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata(
            settings.namespace,
            None,
            {
                **labels("namespace", settings.namespace, "marquee"),
                # Every pod here meets the `restricted` standard; enforce `baseline` so that
                # sidecars or init containers a platform injects (KServe's storage
                # initializer, a mesh) are not refused, and warn on the rest.
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
        ),
    }
    comment = (
        "Apply this file first, then create the Secrets the pods read (they do not start without\n"
        "them; nothing here ships a key):\n"
        f"  kubectl -n {settings.namespace} create secret generic {ADMIN_KEY_SECRET} \\\n"
        "    --from-literal=key=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\"\n"
        f"  kubectl -n {settings.namespace} create secret generic {QUEUE_SECRET} \\\n"
        "    --from-literal=url='redis://:PASSWORD@redis.example.svc:6379/0'"
    )
    return Document(body, comment)


def manifest_files(settings: DeploySettings) -> list[ManifestFile]:
    header = file_header(settings)
    files = [ManifestFile("00-namespace.yaml", (namespace_document(settings),), header)]
    for workload in WORKLOADS:
        documents = (*workload_documents(workload, settings), horizontal_autoscaler(workload, settings))
        files.append(ManifestFile(f"10-{workload.deployment_name}.yaml", documents, header))
    files.append(ManifestFile("20-moderation-worker.yaml", (worker_deployment(settings),), header))
    files.append(
        ManifestFile(
            "autoscaling/prometheus-adapter-values.yaml",
            (Document(adapter_values(settings), ADAPTER_COMMENT),),
            file_header(settings, "its rule is checked against the HPAs and Triton's own rule by the tests"),
            is_k8s=False,
        )
    )
    files.append(
        ManifestFile(
            "autoscaling/keda-scaledobjects.yaml", tuple(scaled_object(w, settings) for w in WORKLOADS), header
        )
    )
    files.append(ManifestFile("monitoring/podmonitor.yaml", (pod_monitor(settings),), header))
    files.append(ManifestFile("kserve/serving-runtime.yaml", (serving_runtime(settings),), header))
    files.append(
        ManifestFile("kserve/inference-services.yaml", tuple(inference_service(w, settings) for w in WORKLOADS), header)
    )
    return files


ADAPTER_COMMENT = """\
Helm values for prometheus-community/prometheus-adapter: the custom-metrics rule the
HorizontalPodAutoscalers read (Triton's k8s-onprem rule, renamed). Install with
  helm install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring \\
    -f deploy/k8s/<target>/autoscaling/prometheus-adapter-values.yaml
and check: kubectl get --raw /apis/custom.metrics.k8s.io/v1beta1 | grep marquee_triton"""


def render_texts(settings: DeploySettings) -> dict[str, str]:
    """Relative path -> file text, for every manifest file of `settings`."""
    return {manifest.path: dump_file(manifest) for manifest in manifest_files(settings)}


def render_manifests(
    target: str,
    out_dir: Path,
    image: str,
    model_repository_uri: str,
    *,
    worker_image: str = DEFAULT_WORKER_IMAGE,
    namespace: str = "marquee",
    grpc_tls_secret: str | None = None,
    prometheus_url: str | None = None,
) -> list[Path]:
    """Write every manifest for `target` under `out_dir`; returns the files written.
    Files left over from an earlier render that this one does not produce are removed."""
    settings = _settings(target, image, model_repository_uri, worker_image, namespace, grpc_tls_secret, prometheus_url)
    out_dir = Path(out_dir)
    texts = render_texts(settings)
    for leftover in sorted(set(_existing(out_dir)) - set(texts)):
        (out_dir / leftover).unlink()
    written = []
    for relative, text in texts.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def stale(
    target: str,
    out_dir: Path,
    image: str,
    model_repository_uri: str,
    *,
    worker_image: str = DEFAULT_WORKER_IMAGE,
    namespace: str = "marquee",
    grpc_tls_secret: str | None = None,
    prometheus_url: str | None = None,
) -> list[Path]:
    """Files under `out_dir` that are missing, differ from a fresh render, or should not be there."""
    settings = _settings(target, image, model_repository_uri, worker_image, namespace, grpc_tls_secret, prometheus_url)
    out_dir = Path(out_dir)
    texts = render_texts(settings)
    existing = set(_existing(out_dir))
    drifted = [
        out_dir / relative
        for relative, text in texts.items()
        if relative not in existing or (out_dir / relative).read_text() != text
    ]
    return drifted + [out_dir / extra for extra in sorted(existing - set(texts))]


def _settings(
    target, image, repository_uri, worker_image, namespace, grpc_tls_secret, prometheus_url
) -> DeploySettings:
    settings = make_settings(
        target, image, repository_uri, worker_image, namespace=namespace, grpc_tls_secret=grpc_tls_secret
    )
    return replace(settings, prometheus_url=prometheus_url) if prometheus_url else settings


def _existing(out_dir: Path) -> list[str]:
    if not out_dir.is_dir():
        return []
    return sorted(str(path.relative_to(out_dir)) for path in out_dir.rglob("*.yaml"))


@dataclass(frozen=True)
class CommittedRender:
    """The parameters of a rendered folder committed under deploy/k8s/."""

    target: str
    image: str = DEFAULT_IMAGE
    model_repository_uri: str = IMAGE_REPOSITORY
    worker_image: str = DEFAULT_WORKER_IMAGE

    @property
    def out_dir(self) -> Path:
        return K8S_ROOT / self.target


COMMITTED = (CommittedRender("ngc-gpu"), CommittedRender("ngc-cpu"))


def render_committed() -> list[Path]:
    written = []
    for render in COMMITTED:
        written += render_manifests(
            render.target, render.out_dir, render.image, render.model_repository_uri, worker_image=render.worker_image
        )
    return written


def stale_committed() -> list[Path]:
    drifted = []
    for render in COMMITTED:
        drifted += stale(
            render.target, render.out_dir, render.image, render.model_repository_uri, worker_image=render.worker_image
        )
    return drifted


def check_committed() -> None:
    drifted = stale_committed()
    if drifted:
        listing = "\n".join(f"  {path}" for path in drifted)
        raise ManifestDriftError(
            f"{len(drifted)} manifest file(s) under deploy/k8s are stale; "
            f"run `marquee deploy render --committed`:\n{listing}"
        )


def load_rendered(out_dir: Path) -> dict[str, list[dict]]:
    """Relative path -> YAML documents, for every file under a rendered folder."""
    return {
        relative: [d for d in yaml.safe_load_all((out_dir / relative).read_text()) if d]
        for relative in _existing(out_dir)
    }
