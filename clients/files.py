"""Media files for routes that take encoded files as BYTES items (transcribe, analyze_video)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from marquee.errors import InferenceError, InputValidationError

FileSource = str | Path | bytes


def load_file(item: FileSource, index: int, route: str, kind: str) -> tuple[str, bytes]:
    """(name for messages, encoded bytes) of a path or of in-memory bytes."""
    if isinstance(item, bytes | bytearray | memoryview):
        return f"<bytes #{index}>", bytes(item)
    if isinstance(item, str | Path):
        path = Path(item)
        if not path.is_file():
            raise InputValidationError(f"{route}: {kind} file {str(path)!r} does not exist or is not a file")
        return str(path), path.read_bytes()
    raise InputValidationError(
        f"{route}: {kind} {index} is {type(item).__name__}; allowed: a path (str, Path) or the file's bytes"
    )


def bytes_tensor(items: Sequence[bytes]) -> np.ndarray:
    # Filled element by element: np.array(list_of_bytes, object) would be fine too, but
    # this never lets numpy guess a shape from the contents.
    tensor = np.empty(len(items), dtype=np.object_)
    for position, data in enumerate(items):
        tensor[position] = data
    return tensor


def as_list(sources: Iterable[FileSource] | FileSource, method: str) -> list[FileSource]:
    if isinstance(sources, str | Path | bytes | bytearray):
        raise InputValidationError(f"{method}: give a list of paths or bytes, not a single one; wrap it: [x]")
    return list(sources)


def result_object(route: str, source: str, payload: bytes | str) -> dict:
    """One file's JSON result as a dict; anything else breaks the route's contract."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise InferenceError(f"{route}: result for {source} is not JSON ({error}): {text[:200]!r}") from None
    if not isinstance(parsed, dict):
        raise InferenceError(f"{route}: result for {source} is {type(parsed).__name__}; expected a JSON object")
    return parsed
