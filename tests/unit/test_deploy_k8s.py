"""Kubernetes manifests, the Dockerfiles and their requirement files, checked offline.

Nothing here has run on a cluster or in a container (none is available): every manifest
is rendered into tmp_path and validated against the Kubernetes 1.33 OpenAPI schemas
(kubernetes-validate, strict) or Marquee's CRD schemas, and the structure that a schema
cannot see (which models each Deployment loads, GPU requests, probes, the autoscaling
metric's name) is asserted directly.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import kubernetes_validate  # noqa: F401 - the test extra; missing, the module fails instead of skipping
import pytest
import yaml
from packaging.utils import canonicalize_name

from marquee.deploy import k8s
from marquee.deploy.autoscaling import QUEUE_METRIC
from marquee.deploy.errors import DeployError, ManifestValidationError
from marquee.deploy.kserve import RUNTIME_NAME
from marquee.deploy.repository_source import STORAGE_SECRET, parse_repository_uri
from marquee.deploy.requirements import (
    BACKENDS_FILE,
    PROJECT_ROOT,
    ROUTES_FILE,
    WORKER_FILE,
    backend_distributions,
    installed_route_files,
    pins_outside_pyproject,
    python310_problems,
    read_pins,
    route_distributions,
)
from marquee.deploy.triton_args import ADMIN_KEY_REFERENCE, load_model_list
from marquee.deploy.validation import validate_document
from marquee.deploy.workloads import WORKLOADS, unassigned_families
from marquee.server.security import ADMIN_KEY_ENV, AdminKey
from marquee.specs import CATALOGUE

TARGETS = ("ngc-gpu", "ngc-cpu")
IMAGE = "registry.example.com/marquee-triton:test"
CRD_KINDS = {"PodMonitor", "ScaledObject", "ServingRuntime", "InferenceService"}
# Triton's own deploy/k8s-onprem/values.yaml (prometheus-adapter rules.custom metricsQuery).
TRITON_ONPREM_QUERY = (
    "avg(delta(nv_inference_queue_duration_us{<<.LabelMatchers>>}[30s])"
    "/(1+delta(nv_inference_request_success{<<.LabelMatchers>>}[30s]))) by (<<.GroupBy>>)"
)


def render(tmp_path: Path, target: str, repository: str = "file:///models", **options) -> dict[str, list[dict]]:
    out = tmp_path / target
    k8s.render_manifests(target, out, IMAGE, repository, **options)
    return k8s.load_rendered(out)


def k8s_documents(rendered: dict[str, list[dict]]) -> list[dict]:
    return [doc for path, docs in rendered.items() if not path.endswith("-values.yaml") for doc in docs]


def of_kind(rendered: dict[str, list[dict]], kind: str) -> list[dict]:
    return [doc for doc in k8s_documents(rendered) if doc["kind"] == kind]


def triton_deployments(rendered: dict[str, list[dict]]) -> dict[str, dict]:
    return {
        doc["metadata"]["name"]: doc
        for doc in of_kind(rendered, "Deployment")
        if doc["metadata"]["name"].startswith("triton-")
    }


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request, tmp_path_factory) -> tuple[str, dict[str, list[dict]]]:
    return request.param, render(tmp_path_factory.mktemp("k8s"), request.param)


# -- the workload table ------------------------------------------------------------------


def test_every_model_family_is_served_by_exactly_one_workload():
    assert unassigned_families() == []
    families = [family for workload in WORKLOADS for family in workload.families]
    assert len(families) == len(set(families))


def test_route_dependencies_are_loaded_in_the_routes_own_deployment():
    for workload in WORKLOADS:
        names = set(workload.model_names())
        for spec in workload.specs():
            called = set(spec.budget.serve_with) | {step.model for step in spec.ensemble_steps}
            called |= {value for value in spec.parameters.values() if value in CATALOGUE}
            assert called <= names, f"{spec.name} calls {sorted(called - names)} outside {workload.name}"


# -- Triton Deployments --------------------------------------------------------------------


def test_each_deployment_loads_exactly_its_workloads_models(rendered):
    _, manifests = rendered
    deployments = triton_deployments(manifests)
    assert sorted(deployments) == sorted(w.deployment_name for w in WORKLOADS)
    for workload in WORKLOADS:
        args = container(deployments[workload.deployment_name])["args"]
        assert args[0] == "tritonserver"
        assert "--model-control-mode=explicit" in args
        assert load_model_list(args) == workload.model_names()
    loaded = [model for d in deployments.values() for model in load_model_list(container(d)["args"])]
    assert sorted(loaded) == sorted(CATALOGUE), "every model is loaded by exactly one Deployment"


def test_gpu_target_requests_one_gpu_per_pod_and_cpu_target_none(rendered):
    target, manifests = rendered
    resources = [container(d)["resources"] for d in triton_deployments(manifests).values()]
    resources += [isvc["spec"]["predictor"]["model"]["resources"] for isvc in of_kind(manifests, "InferenceService")]
    assert len(resources) == 2 * len(WORKLOADS)
    for resource in resources:
        if target == "ngc-gpu":
            assert resource["requests"]["nvidia.com/gpu"] == resource["limits"]["nvidia.com/gpu"] == "1"
        else:
            assert "nvidia.com/gpu" not in resource["requests"] and "nvidia.com/gpu" not in resource["limits"]
        assert {"cpu", "memory"} <= set(resource["requests"])


def test_probes_hit_tritons_health_endpoints_on_the_http_port(rendered):
    _, manifests = rendered
    for deployment in triton_deployments(manifests).values():
        c = container(deployment)
        assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        startup = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        assert startup >= 300, "model loading gets at least five minutes"


def test_ports_are_named_http_grpc_metrics_and_services_are_cluster_internal(rendered):
    _, manifests = rendered
    for deployment in triton_deployments(manifests).values():
        ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
        assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
        args = container(deployment)["args"]
        for api in ("http", "grpc", "metrics"):
            assert f"--{api}-address=0.0.0.0" in args, "a pod must listen on its own interface"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8002"
    services = of_kind(manifests, "Service")
    assert len(services) == 3 * len(WORKLOADS)
    assert {s["spec"]["type"] for s in services} == {"ClusterIP"}
    assert {s["spec"]["ports"][0]["name"] for s in services} == {"http", "grpc", "metrics"}


def test_restricted_apis_take_the_admin_key_from_a_secret_like_the_embedded_server(rendered):
    _, manifests = rendered
    expected = AdminKey(ADMIN_KEY_REFERENCE, source="test").server_args()
    runtimes = [doc["spec"]["containers"][0] for doc in of_kind(manifests, "ServingRuntime")]
    for c in [container(d) for d in triton_deployments(manifests).values()] + runtimes:
        assert all(arg in c["args"] for arg in expected)
        key_env = next(env for env in c["env"] if env["name"] == ADMIN_KEY_ENV)
        assert set(key_env["valueFrom"]) == {"secretKeyRef"}
        assert not any("value" in env for env in c["env"] if env["name"] == ADMIN_KEY_ENV)


def test_every_deployment_has_a_disruption_budget_and_a_queue_time_autoscaler(rendered):
    _, manifests = rendered
    selectors = {
        d["metadata"]["name"]: d["spec"]["selector"]["matchLabels"] for d in triton_deployments(manifests).values()
    }
    budgets = {
        b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]
        for b in of_kind(manifests, "PodDisruptionBudget")
    }
    assert budgets == set(selectors)
    autoscalers = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(manifests, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == set(selectors)
    for deployment in triton_deployments(manifests).values():
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selectors[deployment["metadata"]["name"]].items() <= template_labels.items()


# -- autoscaling ----------------------------------------------------------------------------


def test_hpa_metric_is_the_name_the_adapter_rule_exposes(rendered):
    _, manifests = rendered
    (values,) = manifests["autoscaling/prometheus-adapter-values.yaml"]
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == QUEUE_METRIC
    assert rule["seriesQuery"] == 'nv_inference_queue_duration_us{namespace="marquee",pod!=""}'
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    for hpa in of_kind(manifests, "HorizontalPodAutoscaler"):
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] == rule["name"]["as"]


def test_adapter_rule_is_the_queue_time_rule_of_tritons_k8s_onprem_example(rendered):
    _, manifests = rendered
    (values,) = manifests["autoscaling/prometheus-adapter-values.yaml"]
    assert values["rules"]["custom"][0]["metricsQuery"] == TRITON_ONPREM_QUERY


def test_keda_scales_on_the_same_signal_and_targets_as_the_hpas(rendered):
    _, manifests = rendered
    targets = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(manifests, "HorizontalPodAutoscaler")}
    scaled = of_kind(manifests, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(targets)
    for scaled_object in scaled:
        hpa = targets[scaled_object["spec"]["scaleTargetRef"]["name"]]
        (trigger,) = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
        assert trigger["metadata"]["threshold"] == hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"]
        assert "nv_inference_queue_duration_us{" in trigger["metadata"]["query"]
        assert f'pod=~"{hpa["spec"]["scaleTargetRef"]["name"]}-' in trigger["metadata"]["query"]
        assert scaled_object["spec"]["minReplicaCount"] == hpa["spec"]["minReplicas"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_promtool_parses_the_autoscaling_queries(tmp_path, rendered):
    _, manifests = rendered
    (values,) = manifests["autoscaling/prometheus-adapter-values.yaml"]
    adapter = values["rules"]["custom"][0]["metricsQuery"]
    adapter = adapter.replace("<<.LabelMatchers>>", 'namespace="marquee"').replace("<<.GroupBy>>", "pod")
    queries = [adapter] + [s["spec"]["triggers"][0]["metadata"]["query"] for s in of_kind(manifests, "ScaledObject")]
    rules = {
        "groups": [{"name": "check", "rules": [{"record": f"check:q{i}", "expr": q} for i, q in enumerate(queries)]}]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- schemas ---------------------------------------------------------------------------------


def test_every_rendered_manifest_validates_offline(rendered):
    _, manifests = rendered
    checked: dict[str, set[str]] = {"kubernetes": set(), "crd": set()}
    for document in k8s_documents(manifests):
        checked[validate_document(document, k8s.VALIDATED_AGAINST)].add(document["kind"])
    assert checked["crd"] == CRD_KINDS
    assert {"Namespace", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= checked[
        "kubernetes"
    ]


@pytest.mark.parametrize(
    ("path", "index", "breaks"),
    [
        ("10-triton-recommendation.yaml", 0, lambda d: container(d).__setitem__("livenesProbe", {})),
        ("10-triton-recommendation.yaml", 5, lambda d: d["spec"].__setitem__("minReplicas", "two")),
        (
            "kserve/inference-services.yaml",
            0,
            lambda d: d["spec"]["predictor"]["model"].__setitem__("storageURI", "s3://b"),
        ),
        (
            "kserve/inference-services.yaml",
            0,
            lambda d: d["spec"]["predictor"]["model"].__setitem__("env", [{"nam": "X"}]),
        ),
        ("kserve/serving-runtime.yaml", 0, lambda d: d["spec"]["containers"][0].__setitem__("port", 8080)),
        (
            "autoscaling/keda-scaledobjects.yaml",
            0,
            lambda d: d["spec"]["triggers"][0]["metadata"].__setitem__("threshold", "fast"),
        ),
        ("autoscaling/keda-scaledobjects.yaml", 0, lambda d: d["spec"]["triggers"][0]["metadata"].pop("query")),
        (
            "monitoring/podmonitor.yaml",
            0,
            lambda d: d["spec"]["podMetricsEndpoints"][0].__setitem__("interval", "15 seconds"),
        ),
    ],
)
def test_validation_rejects_a_broken_manifest(tmp_path, path, index, breaks):
    manifests = render(tmp_path, "ngc-gpu", "s3://bucket/marquee")
    document = copy.deepcopy(manifests[path][index])
    breaks(document)
    with pytest.raises(ManifestValidationError):
        validate_document(document, k8s.VALIDATED_AGAINST)


# -- KServe, the worker, repository sources ------------------------------------------------------


def test_kserve_inference_services_use_the_triton_format_with_marquees_runtime(tmp_path):
    manifests = render(tmp_path, "ngc-gpu", "s3://bucket/marquee")
    (runtime,) = of_kind(manifests, "ServingRuntime")
    assert runtime["metadata"]["name"] == RUNTIME_NAME
    assert runtime["spec"]["containers"][0]["image"] == IMAGE
    assert {"name": "triton", "version": "2", "autoSelect": False} in runtime["spec"]["supportedModelFormats"]
    services = {isvc["metadata"]["name"]: isvc for isvc in of_kind(manifests, "InferenceService")}
    for workload in WORKLOADS:
        model = services[f"marquee-{workload.name}"]["spec"]["predictor"]["model"]
        assert model["modelFormat"] == {"name": "triton"} and model["runtime"] == RUNTIME_NAME
        assert model["storageUri"] == "s3://bucket/marquee"
        assert "--model-repository=/mnt/models" in model["args"]
        assert load_model_list(model["args"]) == workload.model_names()


def test_kserve_manifests_match_the_kserve_sdk_types(rendered):
    pytest.importorskip("kserve", reason="the kserve SDK is not a test dependency (see marquee/deploy/crd_schemas.py)")
    from marquee.deploy.validation import kserve_sdk_problems

    _, manifests = rendered
    documents = of_kind(manifests, "InferenceService") + of_kind(manifests, "ServingRuntime")
    assert len(documents) == len(WORKLOADS) + 1
    assert [problem for document in documents for problem in kserve_sdk_problems(document)] == []


def test_pods_meet_the_restricted_pod_security_standard(rendered):
    _, manifests = rendered
    for deployment in of_kind(manifests, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        for volume in pod["volumes"]:
            assert set(volume) - {"name"} <= {"emptyDir", "secret", "persistentVolumeClaim", "configMap"}


def test_moderation_worker_runs_the_redis_worker_against_the_moderation_grpc_service(rendered):
    _, manifests = rendered
    (worker,) = [d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"] == "moderation-worker"]
    c = container(worker)
    assert c["command"] == ["marquee"] and c["args"][:2] == ["moderation", "worker"]
    url = c["args"][c["args"].index("--url") + 1]
    service_names = {s["metadata"]["name"] for s in of_kind(manifests, "Service")}
    assert url == "triton-moderation-grpc.marquee.svc:8001" and "triton-moderation-grpc" in service_names
    assert float(c["args"][c["args"].index("--lease") + 1]) > float(c["args"][c["args"].index("--timeout") + 1])
    queue_env = next(env for env in c["env"] if env["name"] == "MARQUEE_MODERATION_QUEUE")
    assert queue_env["valueFrom"]["secretKeyRef"] == {"name": "marquee-moderation-queue", "key": "url"}
    assert not any(arg.startswith("redis://") for arg in c["args"]), "the URL may hold a password"


def test_grpc_tls_mounts_the_secret_for_triton_and_its_ca_for_the_worker(tmp_path):
    manifests = render(tmp_path, "ngc-cpu", grpc_tls_secret="marquee-grpc-tls")
    for deployment in triton_deployments(manifests).values():
        args = container(deployment)["args"]
        assert {"--grpc-use-ssl=true", "--grpc-server-cert=/tls/tls.crt", "--grpc-server-key=/tls/tls.key"} <= set(args)
    (worker,) = [d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"] == "moderation-worker"]
    assert {"name": "MARQUEE_GRPC_TLS_CA", "value": "/tls/ca.crt"} in container(worker)["env"]
    for document in k8s_documents(manifests):
        validate_document(document, k8s.VALIDATED_AGAINST)


def test_model_repository_comes_from_object_storage_a_volume_or_the_image(tmp_path):
    s3 = parse_repository_uri("s3://bucket/marquee/ngc-gpu")
    assert s3.server_path == "s3://bucket/marquee/ngc-gpu" and s3.volumes() == []
    assert s3.env_from() == [{"secretRef": {"name": STORAGE_SECRET, "optional": True}}]
    pvc = parse_repository_uri("pvc://models/marquee")
    assert pvc.server_path == "/model-repository/marquee"
    assert pvc.volumes()[0]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert pvc.kserve_storage_uri == "pvc://models/marquee"
    image = parse_repository_uri("file:///models")
    assert image.server_path == "/models" and image.kserve_storage_uri is None
    for bad in ("ftp://host/x", "/models", "pvc:///path", "file://host/models"):
        with pytest.raises(DeployError):
            parse_repository_uri(bad)
    manifests = render(tmp_path, "ngc-cpu", "pvc://models/marquee")
    for deployment in triton_deployments(manifests).values():
        assert "--model-repository=/model-repository/marquee" in container(deployment)["args"]
        assert {"name": "model-repository", "mountPath": "/model-repository", "readOnly": True} in container(
            deployment
        )["volumeMounts"]


def test_unknown_target_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(DeployError, match="ngc-gpu"):
        k8s.render_manifests("tpu", tmp_path, IMAGE, "file:///models")


# -- committed output and drift ---------------------------------------------------------------------


def test_committed_manifests_are_current():
    assert k8s.stale_committed() == [], "run `python -m marquee.deploy.cli render --committed`"


def test_stale_reports_changed_missing_and_leftover_files(tmp_path):
    out = tmp_path / "ngc-cpu"
    k8s.render_manifests("ngc-cpu", out, IMAGE, "file:///models")
    assert k8s.stale("ngc-cpu", out, IMAGE, "file:///models") == []
    (out / "20-moderation-worker.yaml").write_text("# edited by hand\n")
    (out / "monitoring/podmonitor.yaml").unlink()
    (out / "99-extra.yaml").write_text("kind: ConfigMap\n")
    drifted = {path.name for path in k8s.stale("ngc-cpu", out, IMAGE, "file:///models")}
    assert drifted == {"20-moderation-worker.yaml", "podmonitor.yaml", "99-extra.yaml"}
    assert k8s.stale("ngc-cpu", out, "other-image:1", "file:///models") != []
    k8s.render_manifests("ngc-cpu", out, IMAGE, "file:///models")
    assert k8s.stale("ngc-cpu", out, IMAGE, "file:///models") == []


def test_rendered_files_say_they_were_never_applied_here(rendered):
    target, _ = rendered
    for path in (k8s.K8S_ROOT / target).rglob("*.yaml"):
        assert "Never applied to a cluster" in path.read_text().split("\n---", 1)[0]
    for dockerfile in ("Dockerfile", "worker.Dockerfile"):
        assert "NEVER BUILT HERE" in (PROJECT_ROOT / "deploy" / dockerfile).read_text()


# -- the image and its requirements -----------------------------------------------------------------


def test_route_requirements_are_exactly_what_the_installed_route_files_import():
    needed = route_distributions()
    pins = read_pins(ROUTES_FILE)
    assert set(needed) == set(pins), f"imported: {sorted(needed)}; pinned: {sorted(pins)}"


def test_python_backend_requirements_add_what_the_embedded_backends_import():
    pins = read_pins(BACKENDS_FILE)
    assert backend_distributions() <= set(pins)
    assert set(read_pins(ROUTES_FILE)) <= set(pins)


@pytest.mark.parametrize("path", [ROUTES_FILE, BACKENDS_FILE, WORKER_FILE], ids=lambda p: p.name)
def test_requirement_pins_satisfy_pyproject(path):
    assert pins_outside_pyproject(read_pins(path)) == []


def test_installed_route_files_run_on_the_ngc_images_python_310():
    problems = [problem for path in installed_route_files() for problem in python310_problems(path)]
    assert problems == []


def test_worker_requirements_cover_what_the_worker_imports():
    probe = (
        "import sys, json; import marquee.cli, clients.moderation, marquee.moderation.worker, "
        "marquee.moderation.redis_queue, redis, tritonclient.grpc; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names))))"
    )
    modules = json.loads(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    by_module = metadata.packages_distributions()
    # `_distutils_hack` is setuptools' startup hook, imported by a .pth file, not by Marquee.
    imported = {canonicalize_name(by_module[m][0]) for m in modules if m in by_module and not m.startswith("_")}
    imported -= {"marquee"}
    allowed = _with_dependencies(set(read_pins(WORKER_FILE)), extras={"tritonclient": {"grpc"}})
    assert imported <= allowed, f"imported but not installed by requirements-worker.txt: {sorted(imported - allowed)}"


def _with_dependencies(names: set[str], extras: dict[str, set[str]]) -> set[str]:
    """`names` and everything they require (installed metadata), canonical names."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            wanted = extras.get(name, set()) | {""}
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": e}) for e in wanted):
                pending.append(requirement.name)
    return seen


def test_dockerfile_builds_on_ngc_2410_with_the_route_requirements_and_the_repository():
    text = (PROJECT_ROOT / "deploy" / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert "ARG TRITON_RELEASE=24.10" in lines
    assert "FROM nvcr.io/nvidia/tritonserver:${TRITON_RELEASE}-py3" in lines
    assert any("sys.version_info[:2] == (3, 10)" in line for line in lines), "the Python the pins are for is checked"
    assert "COPY deploy/requirements-routes.txt /opt/marquee/requirements-routes.txt" in lines
    assert any("pip install" in line and "-r /opt/marquee/requirements-routes.txt" in line for line in lines)
    assert any(line.startswith("COPY") and line.endswith(" /models/") for line in lines)
    assert parse_repository_uri(k8s.CommittedRender("ngc-gpu").model_repository_uri).server_path == "/models"
    ignore = (PROJECT_ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!deploy/requirements-routes.txt" in ignore and "!model_repository/**" in ignore
