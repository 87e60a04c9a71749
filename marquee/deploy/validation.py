"""Offline validation of rendered manifests: built-in kinds against the Kubernetes
OpenAPI schemas shipped by `kubernetes-validate` (strict: unknown fields fail), custom
resources against `crd_schemas`, with their embedded Kubernetes types resolved in the
same Kubernetes definitions. Needs the test extra (kubernetes-validate)."""

from __future__ import annotations

import functools
import json
import re

from marquee.deploy.crd_schemas import K8S_DEFINITIONS, STATIC_SCHEMAS, inference_service
from marquee.deploy.errors import ManifestValidationError

DEFINITIONS_ID = K8S_DEFINITIONS.split("#")[0]


@functools.cache
def _definitions(version: str) -> dict:
    import importlib_resources

    root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    return json.loads(root.joinpath(f"v{version}-local-strict", "_definitions.json").read_text())


def crd_schema(api_version: str, kind: str, version: str) -> dict | None:
    if (api_version, kind) == ("serving.kserve.io/v1beta1", "InferenceService"):
        return inference_service(_definitions(version)["$defs"])
    return STATIC_SCHEMAS.get((api_version, kind))


def validate_custom(document: dict, schema: dict, version: str) -> None:
    import jsonschema
    from referencing import Registry, Resource

    registry = Registry().with_resource(DEFINITIONS_ID, Resource.from_contents(_definitions(version)))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise ManifestValidationError(_describe(document, errors))


def validate_document(document: dict, version: str) -> str:
    """Raise ManifestValidationError unless `document` matches its schema; returns which
    schema checked it ("kubernetes" or "crd")."""
    schema = crd_schema(document.get("apiVersion", ""), document.get("kind", ""), version)
    if schema is not None:
        validate_custom(document, schema, version)
        return "crd"
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise ManifestValidationError(_describe(document, [error])) from None
    except kubernetes_validate.SchemaNotFoundError as error:
        raise ManifestValidationError(f"{_name(document)}: {error.message}") from None
    return "kubernetes"


def _name(document: dict) -> str:
    return f"{document.get('kind', '?')}/{document.get('metadata', {}).get('name', '?')}"


def _describe(document: dict, errors: list) -> str:
    lines = [f"{_name(document)} does not match its schema:"]
    for error in errors:
        path = ".".join(str(part) for part in error.absolute_path) or "(root)"
        lines.append(f"  {path}: {error.message[:300]}")
    return "\n".join(lines)


KSERVE_SDK_TYPES = {"InferenceService": "V1beta1InferenceService", "ServingRuntime": "V1alpha1ServingRuntime"}


def kserve_sdk_problems(document: dict) -> list[str]:
    """Fields of a KServe document that the `kserve` SDK's generated models do not know,
    or whose JSON type differs. Optional: needs the `kserve` package, which is not a test
    dependency (see crd_schemas); run it where that package is installed."""
    import kserve.models
    import kubernetes.client.models

    def model(name: str):
        return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name)

    problems: list[str] = []

    def walk(value, type_name: str, path: str) -> None:
        scalar = {"str": str, "int": int, "bool": bool, "float": (int, float)}.get(type_name)
        if scalar is not None:
            if not isinstance(value, scalar) or (type_name == "int" and isinstance(value, bool)):
                problems.append(f"{path}: expected {type_name}, got {value!r}")
            return
        if type_name == "object":
            return
        listed = re.fullmatch(r"[Ll]ist\[(.+)\]", type_name)
        mapped = re.fullmatch(r"dict\(str, (.+)\)", type_name) or re.fullmatch(r"[Dd]ict\[str, (.+)\]", type_name)
        if listed:
            for index, item in enumerate(value if isinstance(value, list) else [value]):
                walk(item, listed.group(1), f"{path}[{index}]")
            return
        if mapped:
            for key, item in value.items():
                walk(item, mapped.group(1), f"{path}.{key}")
            return
        cls = model(type_name)
        field_of = {json_name: attribute for attribute, json_name in cls.attribute_map.items()}
        for key, item in value.items():
            if key not in field_of:
                problems.append(f"{path}: {type_name} has no field `{key}`")
            else:
                walk(item, cls.openapi_types[field_of[key]], f"{path}.{key}")

    walk(document, KSERVE_SDK_TYPES[document["kind"]], document["kind"])
    return problems
