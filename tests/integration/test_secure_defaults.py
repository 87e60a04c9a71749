"""Secure defaults, checked against real tritonservers started the way Marquee starts them:
loopback only, an admin key for the model-repository, shared-memory, logging and trace
APIs (HTTP and gRPC), open inference/health/metadata/metrics, and gRPC over TLS."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from rich.console import Console
from tritonclient.utils import InferenceServerException
from typer.testing import CliRunner

from clients.ranker import AsyncRankerClient, RankerClient
from marquee.cli import app
from marquee.errors import ServerUnavailableError
from marquee.sample import sample_page
from marquee.server import GrpcTls, TritonServer, free_ports, resolve_admin_key
from marquee.server.process import log_tail
from marquee.server.security import (
    ADMIN_KEY_ENV,
    ADMIN_KEY_HEADER,
    GRPC_ADMIN_KEY_HEADER,
    AdminKeyError,
    RestrictedApiError,
)
from marquee.serving import endpoints_table

pytestmark = pytest.mark.integration
runner = CliRunner()
MODEL = "ranker_fp32"
ENV_KEY = "key-from-the-environment-0123456789"

# (method, path) of every restricted HTTP API this suite probes; {m} is the model.
RESTRICTED_HTTP = [
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/{m}/unload"),
    ("POST", "/v2/repository/models/{m}/load"),
    ("GET", "/v2/logging"),
    ("GET", "/v2/systemsharedmemory/status"),
    ("GET", "/v2/cudasharedmemory/status"),
    ("GET", "/v2/trace/setting"),
    # Writes: refused without the key before Triton reads the body (issue 18 filled these in).
    ("POST", "/v2/logging"),
    ("POST", "/v2/trace/setting"),
    ("GET", "/v2/models/{m}/trace/setting"),
    ("POST", "/v2/models/{m}/trace/setting"),
    ("POST", "/v2/systemsharedmemory/region/probe/register"),
    ("POST", "/v2/systemsharedmemory/unregister"),
    ("POST", "/v2/cudasharedmemory/region/probe/register"),
    ("POST", "/v2/cudasharedmemory/unregister"),
]
# Read-only restricted calls that succeed with the key (load/unload have their own test).
RESTRICTED_HTTP_READS = [call for call in RESTRICTED_HTTP if call[0] == "GET" or call[1] == "/v2/repository/index"]
OPEN_HTTP = [
    "/v2/health/live",
    "/v2/health/ready",
    "/v2",
    "/v2/models/{m}",
    "/v2/models/{m}/config",
    "/v2/models/{m}/stats",
]
RESTRICTED_GRPC = {
    "repository index": lambda c, h: c.get_model_repository_index(headers=h),
    "unload": lambda c, h: c.unload_model("no_such_model", headers=h),
    "load": lambda c, h: c.load_model("no_such_model", headers=h),
    "log settings": lambda c, h: c.get_log_settings(headers=h),
    "system shared memory": lambda c, h: c.get_system_shared_memory_status(headers=h),
    "trace settings": lambda c, h: c.get_trace_settings(headers=h),
    "update log settings": lambda c, h: c.update_log_settings({"log_verbose_level": 1}, headers=h),
    "update trace settings": lambda c, h: c.update_trace_settings(settings={"trace_rate": "1"}, headers=h),
    "register system shared memory": lambda c, h: c.register_system_shared_memory("probe", "/probe", 8, headers=h),
    "unregister system shared memory": lambda c, h: c.unregister_system_shared_memory(headers=h),
    "cuda shared memory": lambda c, h: c.get_cuda_shared_memory_status(headers=h),
    "unregister cuda shared memory": lambda c, h: c.unregister_cuda_shared_memory(headers=h),
}
RESTRICTED_GRPC_READS = {
    k: v
    for k, v in RESTRICTED_GRPC.items()
    if k in ("repository index", "log settings", "system shared memory", "trace settings")  # fmt: skip
}


def _start(repository: Path, log_dir: Path, **options) -> TritonServer:
    server = TritonServer(repository, free_ports(), log_path=log_dir / "tritonserver.log", models=[MODEL], **options)
    return server.start(timeout=120)


def _fail_with_log_if_dead(server: TritonServer) -> None:
    if not server.alive():
        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(server.log_path)}")


@pytest.fixture(scope="module")
def secure_server(exported_repository, tmp_path_factory):
    """The tiny ranker on Marquee's defaults: no address, key or TLS option given."""
    server = _start(exported_repository, tmp_path_factory.mktemp("secure-log"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def secure_server_still_alive(request):
    yield
    for name in ("secure_server", "tls_server"):
        if name in request.fixturenames:
            _fail_with_log_if_dead(request.getfixturevalue(name))


def _http(server: TritonServer, method: str, path: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{server.http_url}{path.format(m=MODEL)}", method=method)
    if key is not None:
        request.add_header(ADMIN_KEY_HEADER, key)
    try:
        with urllib.request.urlopen(request, data=b"" if method == "POST" else None, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _wait_model_ready(server: TritonServer, ready: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (_http(server, "GET", f"/v2/models/{MODEL}/ready")[0] == 200) == ready:
            return
        time.sleep(0.2)
    pytest.fail(f"{MODEL} ready={not ready} after {timeout:.0f}s; log:\n{log_tail(server.log_path)}")


# --- where the server listens ---------------------------------------------------------


def _decode_proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp{,6} print addresses as 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    address = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(address)


def _listening_addresses(pid: int) -> dict[int, set[str]]:
    """port -> local addresses of the sockets process `pid` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    listening: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            ip = _decode_proc_address(address)
            mapped = getattr(ip, "ipv4_mapped", None)  # gRPC listens on [::ffff:127.0.0.1]
            listening.setdefault(int(port, 16), set()).add(str(mapped or ip))
    return listening


def test_http_grpc_and_metrics_listen_on_loopback_only(secure_server):
    listening = _listening_addresses(secure_server.process.pid)
    ports = secure_server.ports
    assert set(listening) == {ports.http, ports.grpc, ports.metrics}, listening
    for port, addresses in listening.items():
        assert addresses == {"127.0.0.1"}, f"port {port} listens on {addresses}"


def _own_non_loopback_addresses() -> list[str]:
    if shutil.which("ip") is None:
        return []
    lines = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout.splitlines()
    addresses = [line.split()[3].split("/")[0] for line in lines if len(line.split()) > 3]
    return [a for a in addresses if not ipaddress.ip_address(a).is_loopback]


def test_this_machines_other_addresses_are_refused(secure_server):
    addresses = _own_non_loopback_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address (or no `ip` command)")
    ports = secure_server.ports
    for address in addresses:
        for port in (ports.http, ports.grpc, ports.metrics):
            with pytest.raises(ConnectionRefusedError), socket.create_connection((address, port), timeout=3):
                pass


def test_another_address_is_explicit_and_warned_about(exported_repository, tmp_path):
    """Built, never started: tests bind loopback only."""
    exposed = TritonServer(exported_repository, free_ports(), address="0.0.0.0")
    command = exposed.command(tmp_path)
    for flag in ("--http-address=0.0.0.0", "--grpc-address=0.0.0.0", "--metrics-address=0.0.0.0"):
        assert flag in command
    assert exposed.http_url.startswith("127.0.0.1:")  # a local client still goes through loopback
    assert not exposed.loopback_only
    console = Console(record=True, width=200)
    console.print(endpoints_table(exposed))
    text = console.export_text()
    assert "warning: bound to 0.0.0.0: reachable from other hosts" in text
    with pytest.raises(ValueError, match="address='example.org'"):
        TritonServer(exported_repository, free_ports(), address="example.org")


# --- restricted and open APIs ---------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), RESTRICTED_HTTP, ids=[p for _, p in RESTRICTED_HTTP])
def test_restricted_http_api_refuses_without_the_key(secure_server, method, path):
    for key in (None, "the-wrong-key-0123456789"):
        status, body = _http(secure_server, method, path, key)
        assert status == 403, (key, status, body)
        assert f"expecting header '{ADMIN_KEY_HEADER}'" in body
    _wait_model_ready(secure_server, ready=True)  # the refused unload took nothing down


def test_a_refused_settings_write_changes_nothing(secure_server):
    key = secure_server.admin_key.value
    before = json.loads(_http(secure_server, "GET", "/v2/logging", key)[1])
    for wrong in (None, "the-wrong-key-0123456789"):
        request = urllib.request.Request(f"http://{secure_server.http_url}/v2/logging", method="POST")
        if wrong:
            request.add_header(ADMIN_KEY_HEADER, wrong)
        body = json.dumps({"log_verbose_level": before["log_verbose_level"] + 3, "log_info": False}).encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, data=body, timeout=10)
        assert refused.value.code == 403
    assert json.loads(_http(secure_server, "GET", "/v2/logging", key)[1]) == before


@pytest.mark.parametrize(("method", "path"), RESTRICTED_HTTP_READS, ids=[p for _, p in RESTRICTED_HTTP_READS])
def test_restricted_http_api_answers_with_the_key(secure_server, method, path):
    status, body = _http(secure_server, method, path, secure_server.admin_key.value)
    assert status == 200, body
    if path == "/v2/repository/index":
        assert {"name": MODEL, "version": "1", "state": "READY"} in json.loads(body)


def test_unload_and_load_with_the_key_over_http(secure_server):
    key = secure_server.admin_key.value
    assert _http(secure_server, "POST", f"/v2/repository/models/{MODEL}/unload", key)[0] == 200
    _wait_model_ready(secure_server, ready=False)
    assert _http(secure_server, "POST", f"/v2/repository/models/{MODEL}/load", key)[0] == 200
    _wait_model_ready(secure_server, ready=True)


@pytest.mark.parametrize("call", list(RESTRICTED_GRPC), ids=list(RESTRICTED_GRPC))
def test_restricted_grpc_protocol_refuses_without_the_key(secure_server, call):
    client = grpcclient.InferenceServerClient(secure_server.grpc_url)
    # Triton 2.51 answers a restricted gRPC call with UNAVAILABLE (HTTP says 403).
    for headers in (None, {GRPC_ADMIN_KEY_HEADER: "the-wrong-key-0123456789"}, secure_server.admin_key.http_headers()):
        with pytest.raises(InferenceServerException) as refused:
            RESTRICTED_GRPC[call](client, headers)
        assert refused.value.status() == "StatusCode.UNAVAILABLE"
        assert f"expecting header '{GRPC_ADMIN_KEY_HEADER}'" in refused.value.message()
    client.close()


@pytest.mark.parametrize("call", list(RESTRICTED_GRPC_READS), ids=list(RESTRICTED_GRPC_READS))
def test_restricted_grpc_protocol_answers_with_the_key(secure_server, call):
    with grpcclient.InferenceServerClient(secure_server.grpc_url) as client:
        RESTRICTED_GRPC_READS[call](client, secure_server.admin_key.grpc_headers())


def test_unload_and_load_with_the_key_over_grpc(secure_server):
    headers = secure_server.admin_key.grpc_headers()
    with grpcclient.InferenceServerClient(secure_server.grpc_url) as client:
        client.unload_model(MODEL, headers=headers)
        _wait_model_ready(secure_server, ready=False)
        client.load_model(MODEL, headers=headers)
        _wait_model_ready(secure_server, ready=True)


@pytest.mark.parametrize("path", OPEN_HTTP)
def test_health_metadata_config_and_statistics_stay_open(secure_server, path):
    status, body = _http(secure_server, "GET", path)
    assert status == 200, body


def test_inference_and_metrics_stay_open(secure_server):
    categorical, dense = sample_page(0)
    for protocol, url in (("grpc", secure_server.grpc_url), ("http", secure_server.http_url)):
        with RankerClient(url, protocol=protocol) as client:
            assert client.score(categorical, dense).shape == (len(categorical),)
    with urllib.request.urlopen(secure_server.metrics_url, timeout=10) as reply:
        assert "nv_inference_request_success" in reply.read().decode()
    with grpcclient.InferenceServerClient(secure_server.grpc_url) as client:
        assert client.is_server_ready() and client.get_model_metadata(MODEL).name == MODEL


def test_the_key_is_never_in_the_server_log_or_the_endpoint_table(secure_server):
    key = secure_server.admin_key.value
    assert key not in secure_server.log_path.read_text()
    console = Console(record=True, width=200)
    console.print(endpoints_table(secure_server))
    text = console.export_text()
    assert key not in text and secure_server.admin_key.source in text
    assert key not in repr(secure_server.admin_key)


# --- Marquee's own commands pass the key ------------------------------------------------


def test_models_command_reads_the_generated_key(secure_server):
    result = runner.invoke(app, ["models", "--url", secure_server.http_url])
    assert result.exit_code == 0, result.output
    assert MODEL in result.output and "READY" in result.output


def test_models_command_takes_an_admin_key_file(secure_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_CACHE", str(tmp_path / "empty-cache"))  # no generated key to fall back on
    key_file = tmp_path / "admin.key"
    key_file.write_text(secure_server.admin_key.value + "\n")
    key_file.chmod(0o600)
    result = runner.invoke(app, ["models", "--url", secure_server.http_url, "--admin-key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    assert MODEL in result.output


def test_models_command_without_a_key_says_how_to_pass_one(secure_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_CACHE", str(tmp_path))
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    result = runner.invoke(app, ["models", "--url", secure_server.http_url])
    assert isinstance(result.exception, RestrictedApiError)
    assert "--admin-key-file" in str(result.exception) and ADMIN_KEY_ENV in str(result.exception)
    assert not (tmp_path / "admin.key").exists()  # clients never generate a key

    monkeypatch.setenv(ADMIN_KEY_ENV, "not-the-servers-key-0123456789")
    result = runner.invoke(app, ["models", "--url", secure_server.http_url])
    assert isinstance(result.exception, RestrictedApiError)
    assert f"refused the admin key from ${ADMIN_KEY_ENV}" in str(result.exception)


# --- the key file -----------------------------------------------------------------------


def test_the_generated_key_file_is_owner_only_and_stable(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_CACHE", str(tmp_path))
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    assert resolve_admin_key(create=False) is None
    first = resolve_admin_key()
    key_file = tmp_path / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.path == key_file and len(first.value) >= 32
    assert resolve_admin_key() == first  # read back, not regenerated
    assert [p.name for p in tmp_path.iterdir()] == ["admin.key"]  # no temporary file left


def test_the_environment_variable_overrides_the_key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_CACHE", str(tmp_path))
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    from_file = resolve_admin_key()
    monkeypatch.setenv(ADMIN_KEY_ENV, ENV_KEY)
    from_env = resolve_admin_key()
    assert from_env.value == ENV_KEY != from_file.value
    assert from_env.source == f"${ADMIN_KEY_ENV}" and from_env.path is None


def test_a_malformed_key_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv(ADMIN_KEY_ENV, "short:key")
    with pytest.raises(AdminKeyError, match=r"\$MARQUEE_ADMIN_KEY \(9 characters\)") as refused:
        resolve_admin_key()
    assert "short:key" not in str(refused.value)


# --- gRPC over TLS ----------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _write_certificates(folder: Path) -> dict[str, Path]:
    """A self-signed CA, a server certificate it signs for 127.0.0.1/localhost, and an
    unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make test certificates")
    subject_ca = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"]
    for name in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN=Marquee test {name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", *subject_ca, cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-extfile", "server.ext", "-out", "server.pem", cwd=folder)  # fmt: skip
    return {name: folder / f"{name}.pem" for name in ("ca", "other_ca", "server")} | {"key": folder / "server.key"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    return _write_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def tls_server(exported_repository, certificates, tmp_path_factory):
    """gRPC over TLS, and the admin key from the environment instead of the file."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ADMIN_KEY_ENV, ENV_KEY)
        tls = GrpcTls(certificates["server"], certificates["key"])
        server = _start(exported_repository, tmp_path_factory.mktemp("tls-log"), grpc_tls=tls)
    yield server
    server.stop()


def test_grpc_over_tls_answers_with_the_ca(tls_server, certificates):
    categorical, dense = sample_page(0)
    with RankerClient(tls_server.grpc_url, tls_ca=certificates["ca"]) as client:
        assert client.score(categorical, dense).shape == (len(categorical),)

    async def score_async():
        async with AsyncRankerClient(tls_server.grpc_url, tls_ca=certificates["ca"]) as client:
            return await client.score(categorical, dense)

    assert asyncio.run(score_async()).shape == (len(categorical),)


def test_grpc_over_tls_takes_the_ca_from_the_environment(tls_server, certificates, monkeypatch):
    monkeypatch.setenv("MARQUEE_GRPC_TLS_CA", str(certificates["ca"]))
    with RankerClient(tls_server.grpc_url) as client:
        assert client.tls_ca == certificates["ca"]
        client.score(*sample_page(1))


@pytest.mark.parametrize("ca", [None, "other_ca"])
def test_grpc_over_tls_refuses_a_client_without_the_ca_quickly(tls_server, certificates, ca, monkeypatch):
    monkeypatch.delenv("MARQUEE_GRPC_TLS_CA", raising=False)
    started = time.monotonic()
    with RankerClient(tls_server.grpc_url, tls_ca=certificates[ca] if ca else None) as client:
        with pytest.raises(ServerUnavailableError) as refused:
            client.score(*sample_page(0))
    assert time.monotonic() - started < 5.0  # a clear error, not a hang
    assert ("TLS handshake" if ca else "if the server uses TLS, pass tls_ca") in str(refused.value)


def test_grpc_over_tls_keeps_the_admin_key_from_the_environment(tls_server, certificates, secure_server):
    assert tls_server.admin_key.value == ENV_KEY
    client = grpcclient.InferenceServerClient(tls_server.grpc_url, ssl=True, root_certificates=str(certificates["ca"]))
    index = client.get_model_repository_index(headers={GRPC_ADMIN_KEY_HEADER: ENV_KEY}, as_json=True)
    assert {"name": MODEL, "version": "1", "state": "READY"} in index["models"]
    with pytest.raises(InferenceServerException, match="restricted"):
        client.get_model_repository_index(headers=secure_server.admin_key.grpc_headers())  # the file's key
    client.close()


def test_tls_needs_both_certificate_and_key(certificates):
    with pytest.raises(ValueError, match="grpc tls key='/no/such.key': no such file"):
        GrpcTls(certificates["server"], Path("/no/such.key"))
    result = runner.invoke(app, ["serve", "--grpc-tls-cert", str(certificates["server"])])
    assert result.exit_code != 0 and "--grpc-tls-cert needs --grpc-tls-key" in result.output
