"""The quota gateway: an nginx configuration rendered from `policies/surfaces.yaml`.

Why a gateway: a surface over its quota should get the refusal that stock HTTP and gRPC
clients, retry policies and load balancers already know (HTTP 429 with Retry-After, gRPC
RESOURCE_EXHAUSTED), and get it before it costs the inference pool anything. Triton
cannot answer either code: a model (Python or native) can only fail a request with
Triton's own codes, and Triton maps UNAVAILABLE to 503. So nginx (Debian's `nginx`) sits
in front of Triton and keys `limit_req` on the `marquee-surface` header; Triton forwards
the same header to the routes as a request parameter (`surface_header_args`).

Behind it, every route enforces the same quotas itself (route_runtime `RouteObserver.admit`)
for callers that reach Triton without the gateway, and counts what it refuses on Triton's
/metrics (`marquee_route_requests_total{outcome="refused",reason="quota"}`, and Triton's
own `nv_inference_request_failure`). What the gateway refuses never reaches Triton; its
JSON access log records each refusal with the surface and status 429.

    marquee deploy gateway                  # writes deploy/gateway/nginx.conf
    marquee deploy gateway --check          # exit 1 when the committed file is stale
    nginx -p "$PWD/.marquee/gateway" -c "$PWD/deploy/gateway/nginx.conf" -g 'daemon off;'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from marquee.surfaces import SURFACE_HEADER, Surfaces

COMMITTED = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "nginx.conf"
# nginx exposes a request header as $http_<name>, lower case, '-' as '_'.
HEADER_VARIABLE = "$http_" + SURFACE_HEADER.replace("-", "_")
# The same burst the routes allow (route_runtime.QUOTA_BURST_S): one second of quota.
BURST_S = 1.0
RETRY_AFTER_S = 1
GRPC_RESOURCE_EXHAUSTED = 8  # google.rpc.Code
# The largest request body the gateway passes on, over both protocols. Triton 2.51 has no
# limit of its own (no --http-max-input-size yet; its gRPC server takes up to 2 GiB) and
# holds a whole request in memory before it looks at it: measured here, 300 MB requests
# were read in full over HTTP and gRPC, +450 MiB resident, only to be refused for their
# shape. Room for a batch of images; long audio goes through the queue, not one request.
MAX_REQUEST_MIB = 64


@dataclass(frozen=True)
class GatewayAddresses:
    """Where the gateway listens and where Triton is. Loopback by default, as the embedded
    server: exposing the gateway is a decision to make explicitly."""

    listen_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    triton_http: str = "127.0.0.1:8000"
    triton_grpc: str = "127.0.0.1:8001"


def nginx_rate(quota_rps: float) -> str:
    """nginx takes whole requests per second or per minute."""
    if float(quota_rps).is_integer():
        return f"{int(quota_rps)}r/s"
    return f"{max(1, round(quota_rps * 60))}r/m"


def _zone(name: str) -> str:
    return f"marquee_surface_{name}"


def _quota_maps(surfaces: Surfaces) -> list[str]:
    """One map and one zone per surface with a quota: the map's value is the zone's key,
    empty (not counted) for every other surface."""
    lines = []
    for surface in sorted(surfaces.by_name.values(), key=lambda s: s.name):
        if surface.quota_rps <= 0:
            continue
        variable = f"${_zone(surface.name)}"
        lines += [
            f"    # {surface.name}: {surface.workload_class}, {surface.quota_rps:g} requests/s",
            f"    map {HEADER_VARIABLE} {variable} {{",
            f"        {surface.name} {surface.name};",
            '        default "";',
            "    }",
            f"    limit_req_zone {variable} zone={_zone(surface.name)}:1m rate={nginx_rate(surface.quota_rps)};",
        ]
    return lines


def _limit_lines(surfaces: Surfaces, indent: str) -> list[str]:
    return [
        f"{indent}limit_req zone={_zone(s.name)} burst={max(1, math.ceil(s.quota_rps * BURST_S))} nodelay;"
        for s in sorted(surfaces.by_name.values(), key=lambda s: s.name)
        if s.quota_rps > 0
    ]


def render_nginx(surfaces: Surfaces, addresses: GatewayAddresses = GatewayAddresses()) -> str:
    refusal = f"surface over its quota (policies/surfaces.yaml {surfaces.version}); retry after {RETRY_AFTER_S} s"
    too_large = f"request body over {MAX_REQUEST_MIB} MiB (client_max_body_size of the gateway); send less per request"
    limits = _limit_lines(surfaces, "            ")
    return "\n".join(
        [
            "# Marquee's quota gateway in front of Triton. Rendered by `marquee deploy gateway` from",
            f"# policies/surfaces.yaml version {surfaces.version}; edit that file, not this one.",
            "# Run: nginx -p PREFIX -c THIS_FILE -g 'daemon off;'  (PREFIX holds the pid file and temp dirs)",
            "worker_processes auto;",
            "pid nginx.pid;",
            "error_log stderr warn;",
            "events {",
            "    worker_connections 1024;",
            "}",
            "http {",
            "    client_body_temp_path tmp/client_body;",
            "    proxy_temp_path tmp/proxy;",
            "    fastcgi_temp_path tmp/fastcgi;",
            "    uwsgi_temp_path tmp/uwsgi;",
            "    scgi_temp_path tmp/scgi;",
            "    # Triton 2.51 sets no request size limit: this is the one (marquee/deploy/gateway.py).",
            f"    client_max_body_size {MAX_REQUEST_MIB}m;",
            "    log_format marquee_gateway escape=json",
            '        \'{"time":"$time_iso8601","surface":"' + HEADER_VARIABLE + '","status":$status,\'',
            '        \'"request_time":$request_time,"uri":"$uri","remote":"$remote_addr"}\';',
            "    access_log /dev/stdout marquee_gateway;",
            "    limit_req_status 429;",
            "    limit_req_log_level warn;",
            *_quota_maps(surfaces),
            "    upstream triton_http {",
            f"        server {addresses.triton_http};",
            "        keepalive 32;",
            "    }",
            "    upstream triton_grpc {",
            f"        server {addresses.triton_grpc};",
            "        keepalive 32;",
            "    }",
            "    server {  # KServe v2 over HTTP",
            f"        listen {addresses.listen_host}:{addresses.http_port};",
            "        location / {",
            *limits,
            "            error_page 429 = @over_quota;",
            "            error_page 413 = @too_large;",
            "            proxy_pass http://triton_http;",
            "            proxy_http_version 1.1;",
            '            proxy_set_header Connection "";',
            "            proxy_read_timeout 300s;",
            "        }",
            "        location @over_quota {",
            f"            add_header Retry-After {RETRY_AFTER_S} always;",
            "            default_type application/json;",
            f'            return 429 \'{{"error":"{refusal}"}}\';',
            "        }",
            "        location @too_large {",
            "            default_type application/json;",
            f'            return 413 \'{{"error":"{too_large}"}}\';',
            "        }",
            "    }",
            "    server {  # KServe v2 over gRPC",
            f"        listen {addresses.listen_host}:{addresses.grpc_port} http2;",
            "        location / {",
            *limits,
            "            error_page 429 = @over_quota;",
            "            error_page 413 = @too_large;",
            "            grpc_pass grpc://triton_grpc;",
            "            grpc_read_timeout 300s;",
            "        }",
            "        # gRPC carries its status in headers: a trailers-only answer, RESOURCE_EXHAUSTED.",
            "        location @over_quota {",
            "            default_type application/grpc;",
            f"            add_header grpc-status {GRPC_RESOURCE_EXHAUSTED} always;",
            f'            add_header grpc-message "{refusal}" always;',
            "            return 204;",
            "        }",
            "        location @too_large {",
            "            default_type application/grpc;",
            f"            add_header grpc-status {GRPC_RESOURCE_EXHAUSTED} always;",
            f'            add_header grpc-message "{too_large}" always;',
            "            return 204;",
            "        }",
            "    }",
            "}",
            "",
        ]
    )
