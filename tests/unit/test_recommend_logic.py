"""The recommend route's steps, exactly as they run inside Triton, without a server."""

import numpy as np
import pytest

from export.recommend.catalogue import build_catalogue
from marquee.routes.recommend.route_logic import (
    Blocklist,
    FeatureTables,
    RouteInputError,
    RouteRequest,
    apply_rules,
    filter_candidates,
    parse_request,
    ranker_inputs,
)
from marquee.specs.ranker import CATEGORICAL_FEATURES, DENSE_FEATURES


def tables(n=12, genres=None, available=None, age=None):
    return FeatureTables(
        item_genre=np.asarray(genres if genres is not None else np.arange(n) % 3, np.int64),
        item_available=np.asarray(available if available is not None else np.full(n, 0xFF), np.uint8),
        item_dense=np.arange(n * 3, dtype=np.float32).reshape(n, 3),
        item_age_years=np.asarray(age if age is not None else np.full(n, 10.0), np.float32),
        popularity_order=np.arange(n, dtype=np.int64),
        user_dense=np.ones((5, 2), np.float32),
    )


def test_filter_drops_unavailable_watched_blocked_and_unknown_items():
    available = np.full(12, 0xFF, np.uint8)
    available[2] = 0b11110111  # not in region 3
    ids = np.array([0, 1, 2, 3, 4, 99, -1], np.int64)
    kept, scores = filter_candidates(
        ids,
        np.arange(7, dtype=np.float32),
        tables(available=available),
        region=3,
        history=np.array([1]),
        blocked=np.array([4]),
    )
    assert kept.tolist() == [0, 3]
    assert scores.tolist() == [0.0, 3.0]


def test_rules_cap_each_genre_and_fill_the_page():
    ids = np.arange(12, dtype=np.int64)
    scores = np.linspace(1.0, 0.1, 12).astype(np.float32)
    chosen, _, genres = apply_rules(
        ids,
        scores,
        tables(genres=[0] * 8 + [1, 1, 2, 2]),
        n=6,
        max_per_genre=2,
        freshness_boost=0.0,
        freshness_years=1.0,
    )
    assert len(chosen) == 6
    assert np.bincount(genres).max() <= 2
    assert chosen.tolist() == [0, 1, 8, 9, 10, 11]


def test_rules_break_ties_on_the_smaller_item_id_every_time():
    ids = np.array([7, 3, 5, 1], np.int64)
    scores = np.full(4, 0.5, np.float32)
    first = apply_rules(ids, scores, tables(genres=np.zeros(12)), 3, 10, 0.0, 1.0)[0]
    again = apply_rules(ids[::-1].copy(), scores, tables(genres=np.zeros(12)), 3, 10, 0.0, 1.0)[0]
    assert first.tolist() == again.tolist() == [1, 3, 5]


def test_freshness_boost_lifts_a_new_title_over_an_equal_old_one():
    age = np.full(12, 10.0)
    age[6] = 0.0
    chosen, scores, _ = apply_rules(
        np.array([2, 6], np.int64),
        np.array([0.5, 0.5], np.float32),
        tables(age=age),
        2,
        10,
        freshness_boost=0.3,
        freshness_years=0.25,
    )
    assert chosen.tolist() == [6, 2]
    assert scores[0] == pytest.approx(0.65)


def test_ranker_rows_follow_the_ranker_spec_columns():
    request = RouteRequest(user_id=2, region=3, history=np.array([], np.int64), device=1, hour=20, n=5)
    categorical, dense = ranker_inputs(request, np.array([4, 5], np.int64), tables())
    names = [f.name for f in CATEGORICAL_FEATURES]
    assert categorical[:, names.index("item_id")].tolist() == [4, 5]
    assert categorical[0, names.index("context_hour")] == 20
    assert dense.shape == (2, len(DENSE_FEATURES))
    assert dense[1, DENSE_FEATURES.index("item_log_popularity")] == 15.0  # item 5, first dense column


def test_unknown_user_gets_neutral_user_features():
    request = RouteRequest(user_id=10**9, region=0, history=np.array([], np.int64), device=0, hour=0, n=5)
    _, dense = ranker_inputs(request, np.array([1], np.int64), tables())
    assert dense[0, :2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        ("region", {"region": 9}, "region=9 is not a known region; allowed: 0 to 7"),
        ("device", {"context": [4, 1]}, r"context\[0\] \(device\)=4; allowed: 0 to 3"),
        ("hour", {"context": [0, 24]}, r"context\[1\] \(hour\)=24; allowed: 0 to 23"),
        ("n", {"n": 0}, "n=0; allowed: 1 to 100"),
        ("history", {"history": list(range(501))}, "history has 501 items; allowed: at most 500"),
    ],
)
def test_bad_route_input_names_the_field(field, values, message):
    request = {"user_id": 1, "region": 0, "history": [], "context": [0, 12], "n": 10} | values
    with pytest.raises(RouteInputError, match=message):
        parse_request(
            *(np.array(request[k]) for k in ("user_id", "region", "history", "context", "n")),
            max_n=100,
            max_history=500,
        )


def test_blocklist_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "blocklist.txt"
    blocklist = Blocklist(str(path))
    assert blocklist.ids().size == 0  # no file yet: nothing blocked
    path.write_text("# moderation\n5\n\n3  # spam\n")
    assert blocklist.ids().tolist() == [3, 5]
    path.write_text("5\n3\n11\n")
    assert blocklist.ids().tolist() == [3, 5, 11]


def test_unparseable_blocklist_keeps_the_previous_list_and_says_why(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("5\n")
    blocklist = Blocklist(str(path))
    assert blocklist.ids().tolist() == [5]
    path.write_text("5\nseven\n")
    assert blocklist.ids().tolist() == [5]
    assert "not reloaded" in blocklist.last_error and "seven" in blocklist.last_error


def test_catalogue_is_deterministic_and_keeps_the_rankers_titles():
    a, b = build_catalogue(8000, seed=0), build_catalogue(8000, seed=0)
    np.testing.assert_array_equal(a.available, b.available)
    np.testing.assert_array_equal(a.world.item_genre, b.world.item_genre)
    from export.ranker.data import SyntheticWorld

    np.testing.assert_array_equal(a.world.item_genre[:5000], SyntheticWorld(0).item_genre)
    assert 0.6 < a.available_in(3).mean() < 0.9


def test_route_constants_match_the_feature_schema():
    from marquee.routes.recommend import route_logic
    from marquee.specs.ranker import CATEGORICAL_FEATURES

    cardinality = {f.name: f.cardinality for f in CATEGORICAL_FEATURES}
    assert route_logic.N_REGIONS == cardinality["user_region"]
    assert route_logic.N_DEVICES == cardinality["context_device"]
    assert route_logic.N_HOURS == cardinality["context_hour"]
