"""A PodMonitor (prometheus-operator) as the alternative to the pods' scrape annotations."""

from __future__ import annotations

from marquee.deploy.documents import PART_OF, Document, labels, metadata
from marquee.deploy.settings import DeploySettings
from marquee.deploy.triton_deployment import TRITON_NAME


def pod_monitor(settings: DeploySettings) -> Document:
    body = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata("triton", settings.namespace, labels("metrics", "triton", TRITON_NAME)),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": TRITON_NAME, "app.kubernetes.io/part-of": PART_OF}},
            "podTargetLabels": ["app.kubernetes.io/component"],
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
        },
    }
    comment = (
        "Every Triton pod's :8002/metrics for prometheus-operator; the operator adds the `namespace`\n"
        "and `pod` labels the autoscaling rule needs. Use it instead of the prometheus.io/* pod\n"
        "annotations when Prometheus is run by the operator; its Prometheus object must select\n"
        "this PodMonitor (podMonitorSelector, often a `release: <name>` label)."
    )
    return Document(body, comment)
