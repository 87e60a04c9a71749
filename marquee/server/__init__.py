"""Running Triton: the embedded `tritonserver` from the nvidia-pytriton wheel, or an external one."""

from marquee.server.process import ServerPorts, TritonServer, free_ports

__all__ = ["ServerPorts", "TritonServer", "free_ports"]
