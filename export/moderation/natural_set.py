"""The natural-language evaluation set: hand-written comments, apart from training.

`perf/data/moderation_natural.tsv` holds one comment a line (`label<TAB>text`, a header
line first). It was written by hand, before the training generator's natural templates,
and shares no template, slot vocabulary or code with `text_dataset.py`: it measures how
the cascade does on comments phrased the way people write them, not on the generator's
own phrasings.

Two parts, fixed by a hash of each text so that no one chooses them after seeing
results: `dev` (about 70%) may be looked at while developing; `final` (about 30%) is the
held-out check, looked at once per model change and reported, never tuned to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from marquee.specs.moderation_text import TEXT_CLASSES

NATURAL_SET = Path(__file__).resolve().parents[2] / "perf" / "data" / "moderation_natural.tsv"
FINAL_SHARE_PERCENT = 30
SPLITS = ("dev", "final")


@dataclass(frozen=True)
class Comment:
    text: str
    label: str
    split: str


def split_of(text: str) -> str:
    """`final` for about 30% of texts, fixed by the text's SHA-256."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "final" if int.from_bytes(digest[:4], "big") % 100 < FINAL_SHARE_PERCENT else "dev"


def load_natural_set(path: Path = NATURAL_SET, split: str | None = None) -> list[Comment]:
    """Every comment (or one split's), in file order; a malformed line names itself."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed: {', '.join(SPLITS)} or None")
    comments = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or fields[0] not in TEXT_CLASSES or not fields[1].strip():
            raise ValueError(f"{path}:{number}: expected `label<TAB>text` with label in {TEXT_CLASSES}; got {line!r}")
        comment = Comment(fields[1], fields[0], split_of(fields[1]))
        if split is None or comment.split == split:
            comments.append(comment)
    return comments
