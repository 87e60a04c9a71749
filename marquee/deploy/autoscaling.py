"""Scaling on Triton's queue time: a HorizontalPodAutoscaler fed by prometheus-adapter,
or a KEDA ScaledObject that asks Prometheus directly.

The signal is the one Triton's own k8s-onprem example uses: the average time a request
waited in a model queue over the last 30 s,
    delta(nv_inference_queue_duration_us[30s]) / (1 + delta(nv_inference_request_success[30s]))
(the 1 + keeps an idle pod at 0 instead of dividing by zero), averaged over the pod's
models. Both counters are Triton's own, on :8002/metrics. The rule renames the result
so that it cannot clash with a rule another Triton deployment put into the same adapter.
"""

from __future__ import annotations

from marquee.deploy.documents import Document, labels, metadata
from marquee.deploy.settings import DeploySettings
from marquee.deploy.workloads import Workload

QUEUE_SERIES = "nv_inference_queue_duration_us"
SUCCESS_SERIES = "nv_inference_request_success"
WINDOW = "30s"
# The custom metric the adapter serves and the HPAs read.
QUEUE_METRIC = "marquee_triton_queue_us_per_request"


def queue_time_expression(matchers: str) -> str:
    """Average queue time per successful request; `matchers` go inside both selectors."""
    return f"delta({QUEUE_SERIES}{{{matchers}}}[{WINDOW}])/(1+delta({SUCCESS_SERIES}{{{matchers}}}[{WINDOW}]))"


def adapter_rule(namespace: str) -> dict:
    """prometheus-adapter's custom-metrics rule: one value per pod, from the series that
    Prometheus labelled with `namespace` and `pod` (the pod annotations' scrape job and
    a PodMonitor both add them)."""
    return {
        "seriesQuery": f'{QUEUE_SERIES}{{namespace="{namespace}",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{QUEUE_SERIES}$", "as": QUEUE_METRIC},
        "metricsQuery": f"avg({queue_time_expression('<<.LabelMatchers>>')}) by (<<.GroupBy>>)",
    }


def adapter_values(settings: DeploySettings) -> dict:
    """Values for the prometheus-community/prometheus-adapter Helm chart (rules.custom)."""
    host, _, port = settings.prometheus_url.rpartition(":")
    return {
        "prometheus": {"url": host, "port": int(port)},
        "rules": {"default": True, "custom": [adapter_rule(settings.namespace)]},
    }


def horizontal_autoscaler(workload: Workload, settings: DeploySettings) -> Document:
    body = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(
            f"{workload.deployment_name}-hpa",
            settings.namespace,
            labels(workload.name, workload.deployment_name, "triton"),
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.deployment_name},
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QUEUE_METRIC},
                        "target": {"type": "AverageValue", "averageValue": str(workload.queue_target_us)},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
                },
                # A new Triton pod takes minutes to load its models: give back slowly.
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
                },
            },
        },
    }
    comment = (
        f"Scales {workload.deployment_name} on `{QUEUE_METRIC}`, the average queue time per request\n"
        f"(microseconds) that prometheus-adapter serves from the rule in autoscaling/prometheus-adapter-values.yaml;\n"
        f"target {workload.queue_target_us} us per pod. Without the adapter the HPA reports the metric as\n"
        "unknown and keeps minReplicas. KEDA is the alternative (autoscaling/keda-scaledobjects.yaml);\n"
        "delete this HPA before applying it, since both would own the same Deployment."
    )
    return Document(body, comment)


def workload_pod_matchers(workload: Workload, namespace: str) -> str:
    # Deployment pods are named <deployment>-<replicaset hash>-<pod hash>.
    return f'namespace="{namespace}",pod=~"{workload.deployment_name}-[a-z0-9]+-[a-z0-9]+"'


def keda_query(workload: Workload, namespace: str) -> str:
    return f"avg({queue_time_expression(workload_pod_matchers(workload, namespace))})"


def scaled_object(workload: Workload, settings: DeploySettings) -> Document:
    body = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(
            f"{workload.deployment_name}-keda",
            settings.namespace,
            labels(workload.name, workload.deployment_name, "triton"),
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.deployment_name},
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "minReplicaCount": workload.min_replicas,
            "maxReplicaCount": workload.max_replicas,
            "triggers": [
                {
                    "type": "prometheus",
                    # The query returns one average for the whole Deployment, so KEDA must
                    # compare it as a value, not divide it by the replica count.
                    "metricType": "Value",
                    "metadata": {
                        "serverAddress": settings.prometheus_url,
                        "query": keda_query(workload, settings.namespace),
                        "threshold": str(workload.queue_target_us),
                    },
                }
            ],
        },
    }
    comment = (
        f"KEDA alternative to {workload.deployment_name}-hpa: the same queue-time signal, queried from\n"
        f"Prometheus at {settings.prometheus_url}. KEDA creates its own HPA, so delete\n"
        f"{workload.deployment_name}-hpa first:\n"
        f"  kubectl -n {settings.namespace} delete hpa {workload.deployment_name}-hpa"
    )
    return Document(body, comment)
