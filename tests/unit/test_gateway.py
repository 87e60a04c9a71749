"""The quota gateway's nginx configuration: rendered from the surfaces file, committed
current, and accepted by nginx itself (`nginx -t`)."""

from __future__ import annotations

import shutil
import subprocess

from typer.testing import CliRunner

from marquee.cli import app
from marquee.deploy.gateway import COMMITTED, GatewayAddresses, nginx_rate, render_nginx
from marquee.surfaces import load_surfaces


def test_quotas_become_nginx_rates_per_second_or_per_minute():
    assert nginx_rate(50) == "50r/s"
    assert nginx_rate(50.0) == "50r/s"
    assert nginx_rate(0.5) == "30r/m"
    assert nginx_rate(2.25) == "135r/m"


def test_every_surface_with_a_quota_gets_its_own_zone_and_burst_and_the_others_none():
    surfaces = load_surfaces()
    text = render_nginx(surfaces)
    for surface in surfaces.by_name.values():
        zone = f"zone=marquee_surface_{surface.name}"
        if surface.quota_rps > 0:
            assert f"{zone}:1m rate={nginx_rate(surface.quota_rps)};" in text
            # The same limits on the HTTP and the gRPC server.
            assert text.count(f"limit_req {zone} burst={int(surface.quota_rps)} nodelay;") == 2
        else:
            assert zone not in text, f"{surface.name} has no quota"


def test_the_committed_gateway_is_current():
    result = CliRunner().invoke(app, ["deploy", "gateway", "--check"])
    assert result.exit_code == 0, result.output


def test_the_rendered_gateway_listens_on_loopback_by_default():
    text = render_nginx(load_surfaces())
    listens = [line.strip() for line in text.splitlines() if line.strip().startswith("listen ")]
    assert listens == ["listen 127.0.0.1:8080;", "listen 127.0.0.1:8081 http2;"]


def test_nginx_accepts_the_committed_gateway(tmp_path):
    assert shutil.which("nginx"), "nginx is a test-only package: ./bootstrap.sh --test installs it"
    (tmp_path / "tmp").mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(COMMITTED.read_text())
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_another_listen_address_is_rendered_when_asked():
    text = render_nginx(load_surfaces(), GatewayAddresses(listen_host="0.0.0.0", http_port=80, grpc_port=81))
    assert "listen 0.0.0.0:80;" in text and "listen 0.0.0.0:81 http2;" in text
