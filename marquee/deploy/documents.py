"""Manifest documents and files: plain dicts, a comment each, YAML out.

Comments cannot live inside PyYAML's output, so each document carries its explanation
as a comment block above it; the reasons stay next to what they explain.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

PART_OF = "marquee"
MANAGED_BY = "marquee-deploy-render"


@dataclass(frozen=True)
class Document:
    body: dict
    comment: str = ""

    @property
    def kind(self) -> str:
        return self.body.get("kind", "")


@dataclass(frozen=True)
class ManifestFile:
    """One file under deploy/k8s/<target>/: Kubernetes objects, or (`is_k8s=False`)
    configuration for another tool, such as prometheus-adapter's Helm values."""

    path: str  # relative to the target's folder
    documents: tuple[Document, ...]
    header: str = ""
    is_k8s: bool = True


def labels(component: str, instance: str, name: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(instance: str) -> dict[str, str]:
    """Pods of one Deployment; the instance label is unique per Deployment."""
    return {"app.kubernetes.io/instance": instance, "app.kubernetes.io/part-of": PART_OF}


def metadata(name: str, namespace: str | None, object_labels: dict, annotations: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(object_labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _comment_block(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.strip().splitlines()) if text.strip() else ""


def dump_document(document: Document) -> str:
    body = yaml.safe_dump(document.body, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
    return _comment_block(document.comment) + body


def dump_file(manifest: ManifestFile) -> str:
    parts = [dump_document(document) for document in manifest.documents]
    return _comment_block(manifest.header) + "---\n".join(parts)


def load_documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]
