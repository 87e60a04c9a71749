"""Word ids for the Jigsaw BiLSTM, by the rules of the Keras `Tokenizer` it was trained with.

The vocabulary is plain JSON (written once at export from the package's pickled
tokenizer by a restricted unpickler; the route never unpickles anything). Keras's rules,
reproduced: lower-case; every character of `filters` becomes the `split` character;
split and drop empty words; keep words whose index is below `num_words` (the rest are
dropped, as there is no OOV token); then pad and truncate at the front to `maxlen`
(Keras `pad_sequences` defaults), with 0 as padding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class JigsawVocabulary:
    word_index: dict[str, int]
    num_words: int
    filters: str
    lower: bool
    split: str
    maxlen: int

    @classmethod
    def load(cls, path: str | Path) -> JigsawVocabulary:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(raw["word_index"], raw["num_words"], raw["filters"], raw["lower"], raw["split"], raw["maxlen"])

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, sort_keys=True)

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        text = text.translate(str.maketrans({c: self.split for c in self.filters}))
        return [word for word in text.split(self.split) if word]

    def ids(self, text: str) -> list[int]:
        found = (self.word_index.get(word) for word in self.words(text))
        return [i for i in found if i is not None and i < self.num_words]

    def encode(self, texts: list[str]) -> np.ndarray:
        """int64 [len(texts), maxlen]: ids right-aligned, the front zero-padded or cut."""
        batch = np.zeros((len(texts), self.maxlen), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)[-self.maxlen :]
            if ids:
                batch[row, self.maxlen - len(ids) :] = ids
        return batch
