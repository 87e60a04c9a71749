"""WER: our normalisation and alignment, cross-checked against jiwer on random edits."""

from __future__ import annotations

import random

import pytest

from marquee.transcription.wer import align, normalize, number_words, word_error_rate


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (105, "one hundred five"),
        (1_250, "one thousand two hundred fifty"),
        (2_000_019, "two million nineteen"),
    ],
)
def test_number_words(n, words):
    assert number_words(n) == words


def test_normalisation_keeps_only_words():
    assert (
        normalize("Hello, World!  It's 3 o'clock -- 100% sure.")
        == "hello world its three oclock one hundred percent sure"
    )
    assert normalize("Pay $1,250.5 now") == "pay one thousand two hundred fifty point five now"
    assert normalize("  ") == ""


def test_punctuation_case_and_spelled_numbers_are_not_errors():
    result = word_error_rate("The train leaves from platform number three.", "the train leaves from Platform Number 3")
    assert result.errors == 0 and result.wer == 0.0


def test_counts_each_kind_of_error():
    result = word_error_rate("a b c d e", "a x c e")  # the only 2-edit alignment
    assert (result.substitutions, result.deletions, result.insertions) == (1, 1, 0)
    assert result.wer == pytest.approx(2 / 5)
    assert "WER 40.00%" in str(result)
    inserted = word_error_rate("a b", "a q b z")
    assert (inserted.substitutions, inserted.deletions, inserted.insertions) == (0, 0, 2)
    assert inserted.wer == pytest.approx(1.0)


def test_empty_reference_convention():
    assert word_error_rate("", "").wer == 0.0
    assert word_error_rate("", "noise").wer == 1.0
    assert word_error_rate("two words", "").wer == 1.0


def test_agrees_with_jiwer_on_random_edits():
    import jiwer

    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(12)]
    for _ in range(200):
        reference = [rng.choice(vocabulary) for _ in range(rng.randint(1, 25))]
        hypothesis = [rng.choice(vocabulary) for _ in range(rng.randint(0, 25))]
        ours = align(reference, hypothesis)
        theirs = jiwer.process_words(" ".join(reference), " ".join(hypothesis) or "")
        assert ours.errors == theirs.substitutions + theirs.deletions + theirs.insertions
        assert ours.wer == pytest.approx(theirs.wer)
