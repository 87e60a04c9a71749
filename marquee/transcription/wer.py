"""Word error rate, with the text normalisation it assumes written down.

Normalisation (applied to reference and hypothesis alike, so that only words count):
1. Unicode NFKC, lowercase;
2. numbers as words, the way espeak-ng reads them and people write them out:
   "3" -> "three", "1,250" -> "one thousand two hundred fifty", "2.5" -> "two point
   five", "%" -> "percent" (no "and"; ordinals such as "3rd" become "three rd" and count as an error;
   numbers above 999,999,999,999 are spelled digit by digit);
3. hyphens, slashes and other punctuation become spaces, except apostrophes, which are
   dropped inside words ("don't" -> "dont") so contractions compare equal however they
   are typed;
4. whitespace collapses; words are what is left between spaces.

WER = (substitutions + deletions + insertions) / reference words, from a word-level
Levenshtein alignment (unit costs). An empty reference gives 0.0 for an empty
hypothesis and 1.0 (by convention) otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))


def number_words(n: int) -> str:
    """Non-negative integer in words, without "and": 1250 -> "one thousand two hundred fifty"."""
    if n < 0:
        raise ValueError(f"number_words: n={n}; must be >= 0")
    if n >= 1_000_000_000_000:
        return " ".join(_ONES[int(d)] for d in str(n))
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def _spell_number(match: re.Match) -> str:
    whole, _, fraction = match.group(0).replace(",", "").partition(".")
    words = number_words(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return f" {words} "


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NUMBER.sub(_spell_number, text).replace("%", " percent ")
    text = re.sub(r"(?<=\w)['’](?=\w)", "", text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class WerResult:
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    hypothesis_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        if self.reference_words == 0:
            return 0.0 if self.hypothesis_words == 0 else 1.0
        return self.errors / self.reference_words

    def __str__(self) -> str:
        return (
            f"WER {self.wer:.2%} ({self.substitutions} substituted, {self.deletions} deleted, "
            f"{self.insertions} inserted of {self.reference_words} reference words)"
        )


def align(reference: list[str], hypothesis: list[str]) -> WerResult:
    """Word-level Levenshtein alignment; among equal-cost paths, the counts of the first found."""
    # Each cell: (cost, substitutions, deletions, insertions); one row kept at a time.
    previous = [(j, 0, 0, j) for j in range(len(hypothesis) + 1)]
    for i, ref_word in enumerate(reference, start=1):
        current = [(i, 0, i, 0)]
        for j, hyp_word in enumerate(hypothesis, start=1):
            diagonal = previous[j - 1]
            if ref_word == hyp_word:
                best = diagonal
            else:
                best = (diagonal[0] + 1, diagonal[1] + 1, diagonal[2], diagonal[3])
            up = previous[j]  # reference word not in the hypothesis
            if up[0] + 1 < best[0]:
                best = (up[0] + 1, up[1], up[2] + 1, up[3])
            left = current[j - 1]  # hypothesis word not in the reference
            if left[0] + 1 < best[0]:
                best = (left[0] + 1, left[1], left[2], left[3] + 1)
            current.append(best)
        previous = current
    _, substitutions, deletions, insertions = previous[-1]
    return WerResult(substitutions, deletions, insertions, len(reference), len(hypothesis))


def word_error_rate(reference: str, hypothesis: str) -> WerResult:
    return align(normalize(reference).split(), normalize(hypothesis).split())


def word_overlap(reference: str, hypothesis: str) -> float:
    """Share of the reference's words (normalised, counted with multiplicity) that the
    hypothesis also contains, in any order: a rough adequacy score for translations,
    where word order and synonyms legitimately differ from the source sentence."""
    from collections import Counter

    wanted = Counter(normalize(reference).split())
    found = Counter(normalize(hypothesis).split())
    total = sum(wanted.values())
    return sum(min(count, found[word]) for word, count in wanted.items()) / total if total else 1.0
