"""JSON schemas for the custom resources Marquee renders, written from their projects' docs.

The Kubernetes OpenAPI schemas (kubernetes-validate) cover only built-in kinds, so the
CRDs get schemas of their own: every object Marquee writes is closed
(`additionalProperties: false`), so a misspelt field fails, and every embedded
Kubernetes type (ObjectMeta, Container, Volume, Toleration, ...) points into the
Kubernetes definitions, so it is checked as strictly as a Deployment is. Sources:
- PodMonitor (monitoring.coreos.com/v1): prometheus-operator's API reference;
- ScaledObject (keda.sh/v1alpha1): KEDA's ScaledObject spec and Prometheus scaler docs
  (serverAddress, query, threshold required; threshold a number in a string);
- ServingRuntime (serving.kserve.io/v1alpha1) and InferenceService
  (serving.kserve.io/v1beta1): KServe's control-plane API reference and Triton docs. The
  field names were cross-checked against the `kserve` 0.21 SDK's generated models
  (V1alpha1ServingRuntimeSpec, V1beta1PredictorSpec, V1beta1ModelSpec). The SDK itself
  is not a test dependency: it pulls a model server (FastAPI, pandas, grpcio-tools) and
  pins psutil below 6, which the project's environment would be downgraded for.
These are not the CRDs' own full schemas: fields Marquee does not write and the docs
list are allowed with a loose type; fields nobody lists fail.
"""

from __future__ import annotations

K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json#/$defs/"


def k8s(name: str) -> dict:
    return {"$ref": K8S_DEFINITIONS + name}


def closed(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema: dict = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
LOOSE_OBJECT = {"type": "object"}
DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
NUMBER_STRING = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}


def resource(api_version: str, kind: str, spec: dict) -> dict:
    return closed(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": k8s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            "spec": spec,
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    )


POD_METRICS_ENDPOINT = closed(
    {
        "port": {"type": "string"},
        "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
        "path": {"type": "string"},
        "scheme": {"enum": ["http", "https"]},
        "interval": DURATION,
        "scrapeTimeout": DURATION,
        "honorLabels": {"type": "boolean"},
        "honorTimestamps": {"type": "boolean"},
        "params": LOOSE_OBJECT,
        "relabelings": {"type": "array", "items": LOOSE_OBJECT},
        "metricRelabelings": {"type": "array", "items": LOOSE_OBJECT},
        "tlsConfig": LOOSE_OBJECT,
        "basicAuth": LOOSE_OBJECT,
        "authorization": LOOSE_OBJECT,
        "bearerTokenSecret": LOOSE_OBJECT,
        "followRedirects": {"type": "boolean"},
        "enableHttp2": {"type": "boolean"},
        "filterRunning": {"type": "boolean"},
        "proxyUrl": {"type": "string"},
    }
)

POD_MONITOR = resource(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    closed(
        {
            "selector": k8s("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"),
            "namespaceSelector": closed(
                {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}
            ),
            "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": POD_METRICS_ENDPOINT},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "jobLabel": {"type": "string"},
            "sampleLimit": {"type": "integer", "minimum": 0},
            "targetLimit": {"type": "integer", "minimum": 0},
            "labelLimit": {"type": "integer", "minimum": 0},
            "attachMetadata": closed({"node": {"type": "boolean"}}),
        },
        required=("selector",),
    ),
)

PROMETHEUS_TRIGGER_METADATA = {
    "if": {"properties": {"type": {"const": "prometheus"}}},
    "then": {
        "properties": {
            "metadata": {
                "required": ["serverAddress", "query", "threshold"],
                "properties": {
                    "serverAddress": {"type": "string", "pattern": "^https?://"},
                    "query": {"type": "string", "minLength": 1},
                    "threshold": NUMBER_STRING,
                    "activationThreshold": NUMBER_STRING,
                },
            }
        }
    },
}

SCALED_OBJECT = resource(
    "keda.sh/v1alpha1",
    "ScaledObject",
    closed(
        {
            "scaleTargetRef": closed(
                {
                    "name": {"type": "string"},
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "envSourceContainerName": {"type": "string"},
                },
                required=("name",),
            ),
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer", "minimum": 0},
            "initialCooldownPeriod": {"type": "integer", "minimum": 0},
            "idleReplicaCount": {"type": "integer", "minimum": 0},
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "fallback": LOOSE_OBJECT,
            "advanced": LOOSE_OBJECT,
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    **closed(
                        {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": STRING_MAP,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": closed(
                                {"name": {"type": "string"}, "kind": {"type": "string"}}, ("name",)
                            ),
                        },
                        required=("type", "metadata"),
                    ),
                    **PROMETHEUS_TRIGGER_METADATA,
                },
            },
        },
        required=("scaleTargetRef", "triggers"),
    ),
)

SUPPORTED_MODEL_FORMAT = closed(
    {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "autoSelect": {"type": "boolean"},
        "priority": {"type": "integer", "minimum": 1},
    },
    required=("name",),
)

SERVING_RUNTIME = resource(
    "serving.kserve.io/v1alpha1",
    "ServingRuntime",
    closed(
        {
            "supportedModelFormats": {"type": "array", "items": SUPPORTED_MODEL_FORMAT},
            "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
            "containers": {"type": "array", "minItems": 1, "items": k8s("io.k8s.api.core.v1.Container")},
            "volumes": {"type": "array", "items": k8s("io.k8s.api.core.v1.Volume")},
            "tolerations": {"type": "array", "items": k8s("io.k8s.api.core.v1.Toleration")},
            "nodeSelector": STRING_MAP,
            "affinity": k8s("io.k8s.api.core.v1.Affinity"),
            "imagePullSecrets": {"type": "array", "items": k8s("io.k8s.api.core.v1.LocalObjectReference")},
            "annotations": STRING_MAP,
            "labels": STRING_MAP,
            "multiModel": {"type": "boolean"},
            "disabled": {"type": "boolean"},
            "grpcEndpoint": {"type": "string"},
            "grpcDataEndpoint": {"type": "string"},
            "httpDataEndpoint": {"type": "string"},
            "replicas": {"type": "integer", "minimum": 0},
            "schedulerName": {"type": "string"},
            "hostIPC": {"type": "boolean"},
            "builtInAdapter": LOOSE_OBJECT,
            "storageHelper": LOOSE_OBJECT,
            "workerSpec": LOOSE_OBJECT,
            "resourceClaims": {"type": "array", "items": LOOSE_OBJECT},
        },
        required=("containers",),
    ),
)

# KServe-only fields of V1beta1ModelSpec; the rest of it is an inline core/v1 Container.
MODEL_SPEC_FIELDS = {
    "modelFormat": closed({"name": {"type": "string"}, "version": {"type": "string"}}, required=("name",)),
    "runtime": {"type": "string"},
    "runtimeVersion": {"type": "string"},
    "protocolVersion": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]},
    "storageUri": {"type": "string", "pattern": "^(s3|gs|pvc|https?|hf|oci|hdfs|webhdfs)://"},
    "storage": LOOSE_OBJECT,
    "confidential": LOOSE_OBJECT,
}

# KServe-only fields of V1beta1PredictorSpec; the rest of it is an inline core/v1 PodSpec.
PREDICTOR_FIELDS = {
    "minReplicas": {"type": "integer", "minimum": 0},
    "maxReplicas": {"type": "integer", "minimum": 0},
    "scaleTarget": {"type": "integer", "minimum": 1},
    "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
    "scaleMetricType": {"enum": ["Utilization", "AverageValue", "Value"]},
    "containerConcurrency": {"type": "integer", "minimum": 0},
    "timeout": {"type": "integer", "minimum": 0},
    "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
    "labels": STRING_MAP,
    "annotations": STRING_MAP,
    "batcher": LOOSE_OBJECT,
    "logger": LOOSE_OBJECT,
    "autoScaling": LOOSE_OBJECT,
    "deploymentStrategy": LOOSE_OBJECT,
    "workerSpec": LOOSE_OBJECT,
    "storageUris": {"type": "array", "items": LOOSE_OBJECT},
    "storageContainerName": {"type": "string"},
    "serviceAccount": {"type": "string"},
    "schedulingGroup": LOOSE_OBJECT,
    **{
        framework: LOOSE_OBJECT
        for framework in (
            "huggingface",
            "lightgbm",
            "onnx",
            "paddle",
            "pmml",
            "pytorch",
            "sklearn",
            "tensorflow",
            "triton",
            "xgboost",
        )
    },
}


def absolute_refs(schema):
    """A copy of a piece of the Kubernetes definitions whose local `#/$defs/...`
    references point into the definitions document, wherever the copy is placed."""
    if isinstance(schema, dict):
        return {
            key: (K8S_DEFINITIONS + value.removeprefix("#/$defs/") if key == "$ref" else absolute_refs(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [absolute_refs(item) for item in schema]
    return schema


def inference_service(k8s_definitions: dict) -> dict:
    """The InferenceService schema; its model and predictor extend the Kubernetes
    Container and PodSpec definitions (`k8s_definitions`, i.e. `$defs`)."""
    container = absolute_refs(k8s_definitions["io.k8s.api.core.v1.Container"]["properties"])
    pod_spec = absolute_refs(k8s_definitions["io.k8s.api.core.v1.PodSpec"]["properties"])
    model = closed({**container, **MODEL_SPEC_FIELDS}, required=("modelFormat",))
    predictor = closed({**pod_spec, **PREDICTOR_FIELDS, "model": model})
    return resource(
        "serving.kserve.io/v1beta1",
        "InferenceService",
        closed(
            {"predictor": predictor, "transformer": LOOSE_OBJECT, "explainer": LOOSE_OBJECT, "tracing": LOOSE_OBJECT},
            required=("predictor",),
        ),
    )


STATIC_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): SERVING_RUNTIME,
}
