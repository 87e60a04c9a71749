"""Secure defaults for the embedded tritonserver: loopback binding, an admin key for the
APIs that change or expose server state, and TLS for gRPC.

Triton enforces all of it itself; Marquee only chooses the flags:
- `--http-address/--grpc-address/--metrics-address` (Triton's default is 0.0.0.0);
- `--http-restricted-api=<apis>:<header>=<key>` and
  `--grpc-restricted-protocol=<apis>:<header>=<key>`. An HTTP request must carry the
  header `marquee-admin-key: <key>`; Triton prefixes gRPC metadata keys, so a gRPC call
  carries `triton-grpc-protocol-marquee-admin-key: <key>`;
- `--grpc-use-ssl --grpc-server-cert --grpc-server-key` (Triton's HTTP has no TLS).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from marquee.errors import MarqueeError
from marquee.paths import admin_key_file

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1"
ADMIN_KEY_ENV = "MARQUEE_ADMIN_KEY"
ADMIN_KEY_HEADER = "marquee-admin-key"
# Triton matches a gRPC restriction against metadata named with this prefix.
GRPC_RESTRICTED_PREFIX = "triton-grpc-protocol-"
GRPC_ADMIN_KEY_HEADER = GRPC_RESTRICTED_PREFIX + ADMIN_KEY_HEADER

# Triton's API group names (`tritonserver --help`, 2.51). Health, metadata, inference,
# model-config and statistics stay open: clients, load balancers and perf_analyzer
# (which reads model config and statistics) call them without credentials.
RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")
OPEN_APIS = ("health", "metadata", "inference", "model-config", "statistics")

# A key travels in a header and inside `<apis>:<header>=<key>`: no ':', '=', ',' or spaces.
_KEY_PATTERN = re.compile(r"[A-Za-z0-9._~-]{16,256}")


class AdminKeyError(MarqueeError):
    """The admin key is missing, malformed, or its file is unreadable."""


class RestrictedApiError(MarqueeError):
    """The server refused a restricted API call: no admin key, or the wrong one."""


@dataclass(frozen=True)
class AdminKey:
    value: str
    source: str  # where it came from, safe to print: never the key itself
    path: Path | None = None  # the key file, when it came from one

    def __repr__(self) -> str:  # keep the key out of tracebacks and logs
        return f"AdminKey(source={self.source!r})"

    def http_headers(self) -> dict[str, str]:
        return {ADMIN_KEY_HEADER: self.value}

    def grpc_headers(self) -> dict[str, str]:
        return {GRPC_ADMIN_KEY_HEADER: self.value}

    def server_args(self) -> list[str]:
        apis = ",".join(RESTRICTED_APIS)
        return [
            f"--http-restricted-api={apis}:{ADMIN_KEY_HEADER}={self.value}",
            f"--grpc-restricted-protocol={apis}:{ADMIN_KEY_HEADER}={self.value}",
        ]


def _checked(value: str, source: str, path: Path | None = None) -> AdminKey:
    value = value.strip()
    if not _KEY_PATTERN.fullmatch(value):
        raise AdminKeyError(
            f"admin key from {source} ({len(value)} characters) is not allowed: "
            "expected 16-256 characters from A-Z a-z 0-9 . _ ~ -"
        )
    return AdminKey(value, source, path)


def _read_key_file(path: Path) -> AdminKey:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as error:
        raise AdminKeyError(f"admin key file {path}: cannot read it ({error.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("admin key file %s has mode %o; others can read it: chmod 600 %s", path, mode & 0o777, path)
    return _checked(text, f"file {path}", path)


def _create_key_file(path: Path) -> None:
    """Write a fresh key readable by its owner only. The key goes to a private temp file
    first and is hard-linked into place, so a concurrent start never reads half a key and
    two starts never overwrite each other's key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        os.write(descriptor, (secrets.token_urlsafe(32) + "\n").encode())
        os.close(descriptor)
        try:
            os.link(temporary, path)
            log.info("generated an admin key in %s (mode 0600)", path)
        except FileExistsError:
            pass  # another process won; use its key
    finally:
        temporary.unlink(missing_ok=True)


def resolve_admin_key(key_file: Path | None = None, create: bool = True) -> AdminKey | None:
    """The admin key: `key_file` if given, else $MARQUEE_ADMIN_KEY, else the generated file
    under the cache dir. `create` generates that file when missing (servers do; clients
    do not, and get None when there is no key)."""
    if key_file is not None:
        path = Path(key_file)
        if not path.exists() and not create:
            raise AdminKeyError(f"admin key file {path}: no such file")
    else:
        from_env = os.environ.get(ADMIN_KEY_ENV)
        if from_env is not None:
            return _checked(from_env, f"${ADMIN_KEY_ENV}")
        path = admin_key_file()
    if not path.exists():
        if not create:
            return None
        _create_key_file(path)
    return _read_key_file(path)


def check_bind_address(address: str) -> str:
    """An IP literal to bind (or `localhost`, as 127.0.0.1)."""
    if address == "localhost":
        return DEFAULT_ADDRESS
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ValueError(
            f"address={address!r}: expected an IP address to bind, e.g. 127.0.0.1 (this machine only), "
            "0.0.0.0 (every interface) or one interface's address"
        ) from None


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def connect_host(address: str) -> str:
    """The host a local client uses to reach a server bound to `address`."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:  # 0.0.0.0 / :: include loopback
        return DEFAULT_ADDRESS if ip.version == 4 else "[::1]"
    return f"[{ip}]" if ip.version == 6 else str(ip)


@dataclass(frozen=True)
class GrpcTls:
    """Server side of gRPC TLS: a PEM certificate (chain) and its private key."""

    cert: Path
    key: Path

    def __post_init__(self) -> None:
        for field, path in (("cert", self.cert), ("key", self.key)):
            if not Path(path).is_file():
                raise ValueError(f"grpc tls {field}={str(path)!r}: no such file (expected a PEM file)")

    def server_args(self) -> list[str]:
        return [
            "--grpc-use-ssl=true",
            f"--grpc-server-cert={Path(self.cert).resolve()}",
            f"--grpc-server-key={Path(self.key).resolve()}",
        ]
