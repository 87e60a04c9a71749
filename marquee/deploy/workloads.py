"""The workload classes: which models each Triton Deployment serves, in one table.

A class is a set of model families (`ModelSpec.family`), so a model added to a family
is served by that family's Deployment without touching this file; a new family must be
given a class here (a unit test fails until it is). Each Deployment loads exactly its
class's models (`--model-control-mode=explicit --load-model=...`), so the classes scale
and fail independently: a surge of home pages never waits behind a transcription batch.

The resource figures are starting points sized from the CPU measurements in README.md
(instance counts, model sizes), not from a cluster: no cluster was available. Adjust
them after a load test on the real nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from marquee.deploy.errors import DeployError
from marquee.specs import CATALOGUE, ModelSpec


@dataclass(frozen=True)
class PodResources:
    cpu: str  # request; no CPU limit, so that latency-bound pods are never throttled
    memory: str  # request and limit (the /dev/shm volume below counts against it)
    shared_memory: str  # /dev/shm size: the Python backend passes tensors through it


@dataclass(frozen=True)
class Workload:
    name: str
    families: tuple[str, ...]
    description: str
    resources: PodResources
    min_replicas: int
    max_replicas: int
    # Target for the HPA: average queue time per successful request, microseconds.
    queue_target_us: int
    # How long a pod may take to load its models before Kubernetes restarts it.
    startup_budget_s: int

    @property
    def deployment_name(self) -> str:
        return f"triton-{self.name}"

    def specs(self) -> list[ModelSpec]:
        """The class's models, in catalogue order (the order `--load-model` lists them)."""
        return [spec for spec in CATALOGUE.values() if spec.family in self.families]

    def model_names(self) -> list[str]:
        return [spec.name for spec in self.specs()]


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="recommendation",
        families=("ranker", "recommend"),
        description="interactive home-page rows: the recommend route, retrieval and the rankers",
        resources=PodResources(cpu="4", memory="6Gi", shared_memory="512Mi"),
        # Two pods at all times: a page must not wait for a pod to start.
        min_replicas=2,
        max_replicas=10,
        # The route's page budget is 25 ms; 2 ms of queueing per request is saturation.
        queue_target_us=2_000,
        startup_budget_s=300,
    ),
    Workload(
        name="moderation",
        # Video analysis lives here because its thumbnails are judged by the image route, and
        # BLS calls reach only models of the same server.
        families=("moderation_text", "moderation_image", "vision"),
        description=(
            "the text cascade and the image route (NudeNet, PP-OCR), called by the queue worker; "
            "video analysis (TransNetV2), whose keyframes the image route judges"
        ),
        # Video decoding keeps a file's proxy frames in memory (30 minutes at 2 fps, 360p:
        # about 1.2 GB) and passes windows through shared memory.
        resources=PodResources(cpu="4", memory="12Gi", shared_memory="2Gi"),
        min_replicas=1,
        max_replicas=6,
        # The worker waits up to 30 s per request; 20 ms of queueing means the backlog grows.
        queue_target_us=20_000,
        startup_budget_s=300,
    ),
    Workload(
        name="transcription",
        families=("transcription",),
        description="batch Whisper transcription: log-mel preprocessing, encoder, decoding routes",
        resources=PodResources(cpu="4", memory="12Gi", shared_memory="2Gi"),
        min_replicas=1,
        max_replicas=4,
        # Batch work: scale only when requests queue for half a second on average.
        queue_target_us=500_000,
        startup_budget_s=600,
    ),
)


def get_workload(name: str) -> Workload:
    for workload in WORKLOADS:
        if workload.name == name:
            return workload
    raise DeployError(f"unknown workload `{name}`; known workloads: {', '.join(w.name for w in WORKLOADS)}")


def unassigned_families() -> list[str]:
    """Families of the catalogue that no workload serves (should be none)."""
    assigned = {family for workload in WORKLOADS for family in workload.families}
    return sorted({spec.family for spec in CATALOGUE.values()} - assigned)


def workload_of(model: str) -> Workload:
    for workload in WORKLOADS:
        if model in workload.model_names():
            return workload
    raise DeployError(f"model `{model}` is served by no workload; its family needs a row in WORKLOADS")
