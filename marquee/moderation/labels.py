"""A platform's labelled comments, as a TSV file: the input of `calibrate` and `train`.

The first line names the columns. `label` is required: `clean` or a harm category
(insult, threat, sexual, spam, or any category of the policy). Then either `text` (the
comment; scored by the models) or one column per policy category holding that item's
score in [0, 1] (e.g. exported from audit records), or both. Other columns (`id`,
`reviewer`, ...) are carried and ignored. Blank lines and lines starting with `#` are
skipped. Every error names the file, the line and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from marquee.errors import MarqueeError

CLEAN = "clean"


class LabelFileError(MarqueeError, ValueError):
    """The labelled file is malformed; the message names the line, the field and what is allowed."""


@dataclass(frozen=True)
class LabelledItem:
    line: int
    label: str
    text: str | None
    scores: dict[str, float]

    @property
    def harmful(self) -> bool:
        return self.label != CLEAN


def read_labels(
    path: str | Path, categories: tuple[str, ...], labels: tuple[str, ...] | None = None
) -> list[LabelledItem]:
    """Items of a labelled TSV. `categories` are the score columns recognised; `labels` the
    allowed labels (default: clean + the categories)."""
    path = Path(path)
    allowed = labels or (CLEAN, *categories)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelFileError(f"{path}: cannot read as UTF-8 text: {error}") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")]
    if not numbered:
        raise LabelFileError(f"{path}: empty; expected a header line naming `label` and `text` or score columns")
    header_line, header = numbered[0]
    columns = header.split("\t")
    _check_header(path, header_line, columns, categories)
    score_columns = [c for c in columns if c in categories]
    items = [_item(path, n, line, columns, score_columns, allowed) for n, line in numbered[1:]]
    if not items:
        raise LabelFileError(f"{path}: a header but no labelled lines")
    return items


def _check_header(path: Path, line: int, columns: list[str], categories: tuple[str, ...]) -> None:
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise LabelFileError(f"{path}:{line}: header names {duplicated} twice; each column once")
    if "label" not in columns:
        raise LabelFileError(
            f"{path}:{line}: header {columns!r} lacks `label`; allowed columns: label, text, {', '.join(categories)}"
        )
    if "text" not in columns and not any(c in categories for c in columns):
        raise LabelFileError(
            f"{path}:{line}: header {columns!r} has neither `text` nor a score column ({', '.join(categories)})"
        )


def _item(path: Path, number: int, line: str, columns: list[str], score_columns: list[str], allowed) -> LabelledItem:
    fields = line.split("\t")
    if len(fields) != len(columns):
        raise LabelFileError(
            f"{path}:{number}: {len(fields)} tab-separated fields, the header names {len(columns)} "
            f"({', '.join(columns)})"
        )
    row = dict(zip(columns, fields, strict=True))
    label = row["label"].strip()
    if label not in allowed:
        raise LabelFileError(f"{path}:{number}: field `label`={label!r}; allowed: {', '.join(allowed)}")
    text = row.get("text")
    if text is not None and not text.strip():
        raise LabelFileError(f"{path}:{number}: field `text` is empty; allowed: the comment's text")
    scores = {name: _score(path, number, name, row[name]) for name in score_columns}
    return LabelledItem(number, label, text, scores)


def _score(path: Path, number: int, name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise LabelFileError(f"{path}:{number}: field `{name}`={raw!r}; allowed: a score from 0 to 1")
    return value


def write_labels(path: str | Path, items: list[tuple[str, str]]) -> Path:
    """(label, text) pairs as a labelled TSV (tabs and newlines in texts become spaces)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["label\ttext"] + [f"{label}\t{' '.join(text.split())}" for label, text in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
