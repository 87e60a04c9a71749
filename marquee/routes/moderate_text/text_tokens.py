"""MiniLM tokenisation shared by training (export) and serving (the route), so both feed
the classifier exactly the same ids.

Kept separate from `cascade.py` because it needs the `tokenizers` library, and named so
that it cannot shadow the standard library's `tokenize` on the route's sys.path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

PAD_TOKEN = "[PAD]"


def load_tokenizer(path: str | Path, max_tokens: int) -> Tokenizer:
    """WordPiece from `tokenizer.json`, truncating to `max_tokens` and padding per batch.

    The shipped file pads every text to 128 tokens; padding to the longest text of the
    batch instead makes short comments (the common case) several times cheaper.
    """
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD_TOKEN), pad_token=PAD_TOKEN)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), both int64 [len(texts), longest]."""
    encodings = tokenizer.encode_batch(texts)
    input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
    attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return input_ids, attention_mask
