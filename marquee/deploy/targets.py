"""Cluster targets: what differs between a GPU and a CPU node pool.

The names match the model-repository targets of `marquee render --target` (ngc-gpu,
ngc-cpu): the image built from deploy/Dockerfile carries that target's repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from marquee.deploy.errors import DeployError

GPU_RESOURCE = "nvidia.com/gpu"  # NVIDIA's device plugin advertises GPUs under this name


@dataclass(frozen=True)
class ClusterTarget:
    name: str
    gpus_per_pod: int
    description: str

    @property
    def uses_gpu(self) -> bool:
        return self.gpus_per_pod > 0


TARGETS: dict[str, ClusterTarget] = {
    target.name: target
    for target in (
        ClusterTarget("ngc-gpu", 1, "NGC tritonserver image on GPU nodes (NVIDIA device plugin), one GPU per pod"),
        ClusterTarget("ngc-cpu", 0, "NGC tritonserver image on CPU-only nodes"),
    )
}


def get_target(name: str) -> ClusterTarget:
    try:
        return TARGETS[name]
    except KeyError:
        raise DeployError(f"unknown deploy target `{name}`; known targets: {', '.join(TARGETS)}") from None
