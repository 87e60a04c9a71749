import numpy as np
import pytest

from export.ranker.data import CARDINALITY, KIDS_GENRES, SyntheticWorld, roc_auc


def test_roc_auc_matches_hand_computed_values_with_ties():
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.5])) == pytest.approx(0.875)
    assert roc_auc(np.array([0, 1]), np.array([0.9, 0.1])) == 0.0


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError, match="needs both classes"):
        roc_auc(np.ones(3), np.arange(3))


def test_world_and_samples_are_deterministic_for_a_seed():
    a, b = SyntheticWorld(3).sample(500, seed=9), SyntheticWorld(3).sample(500, seed=9)
    np.testing.assert_array_equal(a.categorical, b.categorical)
    np.testing.assert_array_equal(a.clicked, b.clicked)
    assert not np.array_equal(a.categorical, SyntheticWorld(3).sample(500, seed=10).categorical)


def test_ids_stay_in_vocabulary_and_columns_are_consistent():
    world = SyntheticWorld(0)
    rows = world.sample(2000, seed=1)
    for column, name in enumerate(
        ["user_id", "user_region", "item_id", "item_genre", "context_device", "context_hour"]
    ):
        assert rows.categorical[:, column].min() >= 0 and rows.categorical[:, column].max() < CARDINALITY[name]
    users, items = rows.categorical[:, 0], rows.categorical[:, 2]
    np.testing.assert_array_equal(rows.categorical[:, 1], world.user_region[users])
    np.testing.assert_array_equal(rows.categorical[:, 3], world.item_genre[items])


def test_planted_preferences_drive_clicks():
    world = SyntheticWorld(0)
    rows = world.sample(50_000, seed=2)
    preference = world.genre_preference[rows.categorical[:, 0], rows.categorical[:, 3]]
    liked = preference > np.quantile(preference, 0.8)
    assert rows.clicked[liked].mean() > 1.5 * rows.clicked[~liked].mean()
    # kids' genres are clicked more in the morning than at night
    kids = np.isin(rows.categorical[:, 3], KIDS_GENRES)
    hour = rows.categorical[:, 5]
    assert rows.true_probability[kids & (hour == 8)].mean() > rows.true_probability[kids & (hour == 22)].mean()
    # the log is learnable: the true probabilities rank clicks far better than chance
    assert roc_auc(rows.clicked, rows.true_probability) > 0.7
