"""Running Triton: the embedded `tritonserver` from the nvidia-pytriton wheel, or an external one."""

from marquee.server.process import ServerPorts, TritonServer, free_ports
from marquee.server.security import AdminKey, GrpcTls, resolve_admin_key

__all__ = ["AdminKey", "GrpcTls", "ServerPorts", "TritonServer", "free_ports", "resolve_admin_key"]
