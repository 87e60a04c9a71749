"""KServe: one ServingRuntime with Marquee's image, and an InferenceService per workload.

Shape from KServe's Triton docs (serving.kserve.io/v1beta1): `predictor.model` with
`modelFormat: {name: triton}`, `protocolVersion: v2`, `storageUri`, `runtime`, `args`.
KServe concatenates the runtime container's `args` with the InferenceService's (its
container merge keeps both lists), so the runtime holds the flags every class shares
and each InferenceService adds its repository and its `--load-model` list. The ports
follow KServe's own Triton runtime: HTTP 8080, gRPC 9000, metrics 8002.
"""

from __future__ import annotations

from marquee.deploy.documents import Document, labels, metadata
from marquee.deploy.settings import DeploySettings
from marquee.deploy.targets import GPU_RESOURCE
from marquee.deploy.triton_args import behaviour_args, listen_args, model_control_args, restricted_api_args
from marquee.deploy.triton_deployment import admin_key_env, container_security_context
from marquee.deploy.workloads import Workload

RUNTIME_NAME = "marquee-tritonserver"
KSERVE_HTTP_PORT = 8080
KSERVE_GRPC_PORT = 9000
METRICS_PORT = 8002


def runtime_args() -> list[str]:
    return [
        "tritonserver",
        *listen_args(KSERVE_HTTP_PORT, KSERVE_GRPC_PORT, METRICS_PORT),
        *behaviour_args(),
        *restricted_api_args(),
    ]


def serving_runtime(settings: DeploySettings) -> Document:
    body = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": metadata(RUNTIME_NAME, settings.namespace, labels("kserve-runtime", RUNTIME_NAME, "triton")),
        "spec": {
            "annotations": {"prometheus.kserve.io/port": str(METRICS_PORT), "prometheus.kserve.io/path": "/metrics"},
            # Not auto-selected: only InferenceServices that name this runtime get Marquee's image.
            "supportedModelFormats": [{"name": "triton", "version": "2", "autoSelect": False}],
            "protocolVersions": ["v2", "grpc-v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": settings.image,
                    "args": runtime_args(),
                    "env": [admin_key_env()],
                    "ports": [{"containerPort": KSERVE_HTTP_PORT, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
                    "securityContext": container_security_context(),
                    "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
                }
            ],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
        },
    }
    comment = (
        "KServe runtime: the image built from deploy/Dockerfile (NGC tritonserver + route\n"
        "requirements), with Marquee's flags (restricted APIs behind the admin key Secret, strict\n"
        "readiness). For users on KServe instead of the plain Deployments; never applied here."
    )
    return Document(body, comment)


def predictor_resources(workload: Workload, settings: DeploySettings) -> dict:
    requests = {"cpu": workload.resources.cpu, "memory": workload.resources.memory}
    limits = {"memory": workload.resources.memory}
    if settings.target.uses_gpu:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(settings.target.gpus_per_pod)
    return {"requests": requests, "limits": limits}


def inference_service(workload: Workload, settings: DeploySettings) -> Document:
    repository = settings.repository
    model: dict = {
        "modelFormat": {"name": "triton"},
        "runtime": RUNTIME_NAME,
        "protocolVersion": "v2",
    }
    if repository.kserve_storage_uri:
        model["storageUri"] = repository.kserve_storage_uri
    model["args"] = [f"--model-repository={repository.kserve_server_path}", *model_control_args(workload.model_names())]
    model["resources"] = predictor_resources(workload, settings)
    predictor: dict = {"minReplicas": workload.min_replicas, "maxReplicas": workload.max_replicas, "model": model}
    if settings.target.uses_gpu:
        predictor["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    body = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata(
            f"marquee-{workload.name}", settings.namespace, labels(workload.name, f"marquee-{workload.name}", "triton")
        ),
        "spec": {"predictor": predictor},
    }
    source = f"storageUri {repository.kserve_storage_uri}" if repository.kserve_storage_uri else "the image's /models"
    comment = f"KServe InferenceService for the {workload.name} workload: {source}, its models only."
    return Document(body, comment)
