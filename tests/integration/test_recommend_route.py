"""The `recommend` route on a real tritonserver: invariants, refresh, fallback, bad input."""

import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from clients import RecommendClient
from clients.recommend import _inputs
from marquee.errors import InputValidationError
from marquee.routes.recommend.route_logic import FeatureTables
from marquee.specs.recommend import BUDGETS, RECOMMEND, SETTINGS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tables(route_repository):
    return FeatureTables.load(str(route_repository / "recommend" / "1" / "features.npz"))


@pytest.fixture
def client(triton):
    with RecommendClient(triton.grpc_url, timeout_s=5.0) as recommend_client:
        yield recommend_client


@pytest.fixture
def generous(triton):
    """The same route with budgets no healthy model misses: pages never degrade by chance."""
    with RecommendClient(triton.grpc_url, timeout_s=5.0, model="recommend_generous") as recommend_client:
        yield recommend_client


def test_pages_respect_region_history_and_genre_cap(client, tables):
    rng = np.random.default_rng(0)
    for user in range(25):
        region = int(rng.integers(0, 8))
        history = rng.integers(0, tables.n_items, 30).tolist()
        page = client.recommend(user, region, history, n=20, device=1, hour=21)
        ids = np.array(page.item_ids)
        assert len(ids) == 20 and len(set(ids)) == 20
        assert ((tables.item_available[ids] >> region) & 1).all(), "unavailable title recommended"
        assert not np.isin(ids, history).any(), "already watched title recommended"
        assert np.bincount(tables.item_genre[ids]).max() <= SETTINGS.max_per_genre
        assert [item.genre for item in page.items] == tables.item_genre[ids].tolist()
        assert all(a.score >= b.score for a, b in zip(page.items, page.items[1:], strict=False))


def test_same_request_gives_the_same_page(generous):
    first = generous.recommend(7, 2, [10, 11, 12], n=15, device=0, hour=8)
    second = generous.recommend(7, 2, [10, 11, 12], n=15, device=0, hour=8)
    assert not first.degraded
    assert first.items == second.items


def test_blocklist_refresh_takes_effect_without_restart(generous, route_repository):
    client = generous
    before = client.recommend(3, 1, [], n=10, device=1, hour=20)
    blocked = before.item_ids[:3]
    blocklist = route_repository / "recommend_generous" / "1" / "blocklist.txt"
    original = blocklist.read_text()
    try:
        blocklist.write_text(original + "".join(f"{item}\n" for item in blocked))
        after = client.recommend(3, 1, [], n=10, device=1, hour=20)
        assert not set(blocked) & set(after.item_ids)
        # Everything else on the page stays, in the same order (freed slots are refilled).
        remaining = before.item_ids[3:]
        assert [item for item in after.item_ids if item in remaining] == remaining
    finally:
        blocklist.write_text(original)
    assert client.recommend(3, 1, [], n=10, device=1, hour=20).item_ids == before.item_ids


def _call(triton, model, client=None, **overrides):
    arrays = _inputs(5, 4, [1, 2, 3], 20, 1, 21) | overrides
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "INT32" if array.dtype == np.int32 else "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return (client or grpcclient.InferenceServerClient(triton.grpc_url)).infer(model, inputs)


@pytest.mark.parametrize("kind", ["slow", "failing"])
def test_bad_ranker_degrades_to_retrieval_order_within_budget(triton, tables, kind):
    client = grpcclient.InferenceServerClient(triton.grpc_url)  # one channel, as a real caller keeps
    for _ in range(2 * RECOMMEND.instance_groups[0].count):  # each route instance's first page is slow
        _call(triton, f"recommend_{kind}_ranker", client)
    rank_ms, total_ms, client_ms = [], [], []
    for _ in range(8):
        start = time.perf_counter()
        result = _call(triton, f"recommend_{kind}_ranker", client)
        client_ms.append((time.perf_counter() - start) * 1000)
        assert result.as_numpy("degraded")[0]
        ids = result.as_numpy("item_ids")
        assert len(ids) == 20
        assert ((tables.item_available[ids] >> 4) & 1).all() and not np.isin(ids, [1, 2, 3]).any()
        rank_ms.append(result.as_numpy("stage_ms")[2])
        total_ms.append(result.as_numpy("stage_ms")[4])
    # The rank stage is abandoned at its budget (+ event-loop slack; a saturated 2-core CI
    # host once added 5.3 ms to one page); the page stays in budget. The stand-in sleeps 200 ms.
    assert np.median(rank_ms) <= BUDGETS.rank + 5.0, rank_ms
    assert max(rank_ms) <= BUDGETS.rank + 15.0, rank_ms
    # Pages stay in budget; no page waited for the ranker (which sleeps 200 ms). One page
    # in eight on a 2-core host running server and client reached 36 ms (2026-12-03), so
    # the tail gets the same slack as the rank stage: the p99 is the benchmarks' to judge.
    assert np.median(total_ms) <= BUDGETS.total, total_ms
    assert max(total_ms) <= BUDGETS.total + 15.0, total_ms
    client.close()
    # Nor did any caller: the ranker sleeps 200 ms. The 30 ms client-side p99 is the product
    # SLO that perf/ measures; here the client shares 2 cores with the server and CI's other
    # work (a loaded CI host added 10-20 ms of gRPC and scheduling to each call, 2026-12-03).
    assert max(client_ms) < 200.0, client_ms


def test_healthy_ranker_route_is_not_degraded(triton):
    assert not _call(triton, "recommend_generous").as_numpy("degraded")[0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"region": np.array([99], np.int64)}, "region=99 is not a known region; allowed: 0 to 7"),
        ({"context": np.array([1, 30], np.int64)}, r"context\[1\] \(hour\)=30; allowed: 0 to 23"),
        ({"n": np.array([0], np.int32)}, "n=0; allowed: 1 to 100"),
        ({"history": np.arange(600, dtype=np.int64)}, "history has 600 items; allowed: at most 500"),
    ],
)
def test_bad_route_input_is_a_clear_error_and_the_route_keeps_serving(triton, override, message):
    with pytest.raises(InferenceServerException, match=message):
        _call(triton, "recommend", **override)
    assert len(_call(triton, "recommend").as_numpy("item_ids")) == 20


def test_client_checks_region_and_page_size_before_sending(client):
    with pytest.raises(InputValidationError, match=r"`region`\[0\] = 9 is out of range; allowed: 0 to 7"):
        client.recommend(1, 9)
    with pytest.raises(InputValidationError, match=r"`n`\[0\] = 101 is out of range; allowed: 1 to 100"):
        client.recommend(1, 2, n=101)


def test_new_user_with_no_history_gets_a_full_page(generous):
    page = generous.recommend(10**12, 0, [], n=12)
    assert len(page.items) == 12 and not page.degraded


def _pages(triton, route, degraded):
    import urllib.request

    text = urllib.request.urlopen(triton.metrics_url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("marquee_recommend_pages_total{") and f'route="{route}"' in line:
            if f'degraded="{degraded}"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_degraded_pages_are_counted_on_the_metrics_endpoint(triton):
    before = _pages(triton, "recommend_failing_ranker", "true"), _pages(triton, "recommend_generous", "false")
    _call(triton, "recommend_failing_ranker")
    _call(triton, "recommend_generous")
    after = _pages(triton, "recommend_failing_ranker", "true"), _pages(triton, "recommend_generous", "false")
    assert after[0] == before[0] + 1
    assert after[1] == before[1] + 1
