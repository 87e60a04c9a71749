"""Per-surface quotas on a real tritonserver, and through a real nginx gateway in front of it.

- The gateway (deploy/gateway/nginx.conf, rendered from policies/surfaces.yaml) refuses a
  surface over its quota with HTTP 429 + Retry-After and gRPC RESOURCE_EXHAUSTED, while
  another surface's requests pass.
- Behind it, the route refuses a surface over its quota by itself (callers that skip the
  gateway), and Triton's own metrics count every refusal.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from clients import RecommendClient
from marquee.deploy.gateway import GatewayAddresses, render_nginx
from marquee.errors import QuotaExceededError
from marquee.routes.route_runtime import QUOTA_BURST_S
from marquee.server import free_ports
from marquee.specs.recommend import RECOMMEND
from marquee.surfaces import SURFACE_HEADER, load_surfaces
from tests.integration.test_route_metrics import scrape, value

pytestmark = pytest.mark.integration
SURFACES = load_surfaces()
FLOOD = "batch"  # the smallest quota of policies/surfaces.yaml
ROUTE_INSTANCES = RECOMMEND.instance_groups[0].count  # each instance enforces its share


@dataclass
class Tally:
    ok: int = 0
    refused: list[str] = field(default_factory=list)  # status or client error class
    other: list[str] = field(default_factory=list)


def page_inputs(module, user: int) -> list:
    """One home-page request as a stock tritonclient sends it (the dtypes of the spec)."""
    arrays = {
        "user_id": np.array([user], np.int64),
        "region": np.array([1], np.int64),
        "history": np.array([5, 6], np.int64),
        "context": np.array([0, 20], np.int64),
        "n": np.array([10], np.int32),
    }
    inputs = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), "INT32" if array.dtype == np.int32 else "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def flood_with_marquee_client(url: str, surface: str, requests: int, threads: int = 8) -> tuple[Tally, float]:
    tally = Tally()

    def one(user: int) -> None:
        with RecommendClient(url, timeout_s=10.0, surface=surface) as client:
            try:
                client.recommend(user, 1, [5, 6], n=10)
                tally.ok += 1
            except QuotaExceededError as error:
                tally.refused.append(f"{type(error).__name__} retry_after={error.retry_after_s}")
            except Exception as error:  # noqa: BLE001 - reported by the assertions
                tally.other.append(repr(error))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(requests)))
    return tally, time.perf_counter() - started


def test_a_surface_over_its_quota_is_refused_by_the_route_and_counted_by_triton(triton):
    quota = SURFACES.get(FLOOD).quota_rps
    time.sleep(QUOTA_BURST_S * 1.5)  # buckets full, whatever ran before
    before = scrape(triton.metrics_url)
    tally, elapsed = flood_with_marquee_client(triton.grpc_url, FLOOD, requests=160)
    with RecommendClient(triton.grpc_url, timeout_s=10.0, surface="home") as home:
        home.recommend(1, 1, [5], n=10)  # another surface is not touched by the refusals
    after = scrape(triton.metrics_url)

    assert not tally.other, tally.other[:3]
    assert tally.refused, f"{tally.ok} pages in {elapsed:.2f} s and none refused over a {quota:g} requests/s quota"
    # A token bucket admits at most its depth plus its rate over the run (each instance its share).
    assert tally.ok <= quota * (QUOTA_BURST_S + elapsed) + ROUTE_INSTANCES, (tally.ok, elapsed)
    assert all(r.startswith("QuotaExceededError retry_after=") and "None" not in r for r in tally.refused)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    refused = len(tally.refused)
    assert grew("marquee_route_requests_total", route="recommend", surface=FLOOD, outcome="refused") == refused
    admitted = sum(
        grew("marquee_route_requests_total", route="recommend", surface=FLOOD, outcome=outcome)
        for outcome in ("ok", "degraded")  # a page may degrade under the flood; it was still served
    )
    assert admitted == tally.ok
    # Triton's own per-model counters count every refused request too. (Triton 2.51 counts a
    # Python model's error response as a request_success, not a request_failure: the route's
    # `outcome` label is what tells a refusal apart on /metrics.)
    assert grew("nv_inference_count", model="recommend") == len(tally.refused) + tally.ok + 1  # + the home page
    # Refusals cost no latency sample: the histogram counts only the admitted pages.
    assert grew("marquee_route_request_duration_seconds_count", route="recommend", surface=FLOOD) == tally.ok
    time.sleep(QUOTA_BURST_S * 1.5)  # leave the bucket full for the tests after this one


# -- the gateway ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(triton, tmp_path_factory):
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.fail("nginx is missing: ./bootstrap.sh --test installs it (Debian package nginx)")
    ports = free_ports()
    addresses = GatewayAddresses(
        http_port=ports.http,
        grpc_port=ports.grpc,
        triton_http=triton.http_url,
        triton_grpc=triton.grpc_url,
    )
    prefix = tmp_path_factory.mktemp("gateway")
    (prefix / "tmp").mkdir()
    config = prefix / "nginx.conf"
    config.write_text(render_nginx(SURFACES, addresses))
    # Append mode: nginx workers reopen /dev/stdout with O_APPEND; the master writes to stderr.
    log = (prefix / "gateway.log").open("a")
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(config), "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports.http}/v2/health/ready", timeout=1)
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"nginx did not start:\n{(prefix / 'gateway.log').read_text()}")
            time.sleep(0.2)
    yield addresses, prefix / "gateway.log"
    process.terminate()
    process.wait(timeout=10)


def _http_page(url: str, surface: str, user: int) -> str:
    """'ok', or the HTTP status (with Retry-After) the stock client got."""
    client = httpclient.InferenceServerClient(url)
    try:
        client.infer("recommend", page_inputs(httpclient, user), headers={SURFACE_HEADER: surface})
        return "ok"
    except InferenceServerException as error:
        return str(error.status()) if error.status() in ("429", "503") else f"{error.status()}: {error.message()}"
    finally:
        client.close()


def test_the_gateway_answers_429_to_a_surface_over_its_quota_while_another_surface_passes(gateway):
    addresses, log = gateway
    url = f"127.0.0.1:{addresses.http_port}"
    time.sleep(QUOTA_BURST_S * 1.5)
    with ThreadPoolExecutor(8) as pool:
        flood = pool.map(lambda user: _http_page(url, "creator_tools", user), range(200))
        home = pool.map(lambda user: _http_page(url, "home", user), range(40))
        flooded, homes = list(flood), list(home)
    assert homes == ["ok"] * 40, f"home was refused while creator_tools flooded: {sorted(set(homes))}"
    assert "429" in flooded, f"creator_tools was never refused over its quota: {sorted(set(flooded))}"
    assert set(flooded) <= {"ok", "429", "503"}, sorted(set(flooded))  # 503: the route's own quota refusal
    refused = flooded.count("429")
    assert log.read_text().count('"status":429') == refused, "every refusal is in the gateway's access log"
    # The HTTP refusal carries Retry-After, as stock retry policies expect.
    request = urllib.request.Request(f"http://{url}/v2/models/recommend/infer", data=b"{}", method="POST")
    request.add_header(SURFACE_HEADER, "creator_tools")
    statuses = []
    for _ in range(120):
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as error:
            statuses.append((error.code, error.headers.get("Retry-After")))
            if error.code == 429:
                break
    assert statuses[-1] == (429, "1"), statuses[-5:]
    time.sleep(QUOTA_BURST_S * 1.5)


def test_the_gateway_answers_resource_exhausted_over_grpc_and_the_client_says_retry(gateway):
    addresses, _ = gateway
    url = f"127.0.0.1:{addresses.grpc_port}"
    time.sleep(QUOTA_BURST_S * 1.5)
    tally, _ = flood_with_marquee_client(url, "creator_tools", requests=200)
    assert not tally.other, tally.other[:3]
    assert tally.ok > 0 and tally.refused, (tally.ok, len(tally.refused))
    # Stock gRPC clients see the status code itself. They send concurrently: one client in
    # sequence on a slow host stays under 50 pages/s and is (rightly) never refused.
    refusals = []

    def stock_page(user: int) -> None:
        client = grpcclient.InferenceServerClient(url)
        try:
            client.infer("recommend", page_inputs(grpcclient, user), headers={SURFACE_HEADER: "creator_tools"})
        except InferenceServerException as error:
            refusals.append((error.status(), error.message()))
        finally:
            client.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(stock_page, range(200)))
    codes = {status for status, _ in refusals}
    assert "StatusCode.RESOURCE_EXHAUSTED" in codes, refusals[:3]
    # UNAVAILABLE: the route's own quota refusal, when a page passed the gateway's bucket.
    assert codes <= {"StatusCode.RESOURCE_EXHAUSTED", "StatusCode.UNAVAILABLE"}, refusals[:3]
    assert all("over its quota" in message for _, message in refusals), refusals[:3]
    with RecommendClient(url, timeout_s=10.0, surface="home") as home:
        assert len(home.recommend(3, 1, [5], n=10).item_ids) == 10
    time.sleep(QUOTA_BURST_S * 1.5)


def test_a_header_and_a_parameter_naming_different_surfaces_are_refused(triton):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(
            "recommend",
            page_inputs(grpcclient, 1),
            headers={SURFACE_HEADER: "home"},
            parameters={"surface": "creator_tools"},
        )
    client.close()
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "differ" in refused.value.message()
