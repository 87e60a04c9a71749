"""The seeded labelled set behind the text classifier."""

from __future__ import annotations

import pytest

from export.moderation.text_dataset import CATEGORIES, TEMPLATES, build_dataset, held_out_templates
from marquee.specs.moderation_text import TEXT_CLASSES


@pytest.fixture(scope="module")
def dataset():
    return build_dataset()


def test_dataset_labels_are_the_classifier_classes():
    assert CATEGORIES == TEXT_CLASSES and set(TEMPLATES) == set(TEXT_CLASSES)


def test_dataset_is_deterministic_for_a_seed(dataset):
    assert build_dataset() == dataset
    assert build_dataset(seed=1).train != dataset.train


def test_train_and_test_share_no_template(dataset):
    train_templates = {e.template for e in dataset.train}
    test_templates = {e.template for e in dataset.test}
    assert not train_templates & test_templates
    assert test_templates == set(held_out_templates())


def test_every_class_has_hundreds_of_examples_in_both_splits(dataset):
    counts = dataset.counts()
    for category in TEXT_CLASSES:
        assert counts["train"][category] >= 250, counts
        assert counts["test"][category] >= 80, counts


def test_no_text_appears_twice_or_under_two_labels(dataset):
    keys = [" ".join(e.text.lower().split()).strip(".!") for e in dataset.train + dataset.test]
    assert len(keys) == len(set(keys))
