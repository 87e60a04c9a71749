"""Read a CTranslate2 `model.bin` (binary format version 6) into numpy arrays.

Layout (little-endian): uint32 format version; spec name; uint32 spec revision; uint32
variable count; per variable a name, a uint8 rank, rank x uint32 dims, a uint8 dtype id,
a uint32 byte count and the raw data; then uint32 alias count and (alias, target) name
pairs. A name is a uint16 length (counting a trailing NUL) followed by that many bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUPPORTED_VERSIONS = (5, 6)
# CTranslate2's dtype ids, in its own order; bfloat16 has no numpy type and is rejected.
_DTYPES: dict[int, np.dtype | None] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: None,
}


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


@dataclass
class CT2Model:
    spec_name: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following aliases (CTranslate2 stores shared weights once)."""
        name = self.aliases.get(name, name)
        try:
            return self.variables[name]
        except KeyError:
            raise KeyError(f"CTranslate2 model has no variable `{name}`") from None


class _Cursor:
    def __init__(self, data: memoryview):
        self.data = data
        self.offset = 0

    def unpack(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.data[self.offset : self.offset + length])
        self.offset += length
        return raw.rstrip(b"\0").decode("utf-8")

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise CT2FormatError(f"truncated file: wanted {count} bytes at offset {self.offset}")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk


def read_ct2_model(path: Path) -> CT2Model:
    """Parse `model.bin`; arrays keep the stored dtype (float16 weights stay float16)."""
    data = memoryview(Path(path).read_bytes())
    cursor = _Cursor(data)
    version = cursor.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(f"{path}: binary version {version}; supported: {SUPPORTED_VERSIONS}")
    spec_name = cursor.string()
    revision = cursor.unpack("I")
    variables = {}
    for _ in range(cursor.unpack("I")):
        name = cursor.string()
        rank = cursor.unpack("B")
        shape = tuple(cursor.unpack("I") for _ in range(rank))
        dtype_id = cursor.unpack("B")
        dtype = _DTYPES.get(dtype_id)
        if dtype is None:
            raise CT2FormatError(f"{path}: variable `{name}` has unsupported dtype id {dtype_id}")
        nbytes = cursor.unpack("I")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise CT2FormatError(f"{path}: variable `{name}` holds {nbytes} bytes; shape {shape} needs {expected}")
        variables[name] = np.frombuffer(cursor.take(nbytes), dtype=dtype).reshape(shape).copy()
    aliases = {}
    if cursor.offset < len(data):
        for _ in range(cursor.unpack("I")):
            alias = cursor.string()
            aliases[alias] = cursor.string()
    return CT2Model(spec_name=spec_name, revision=revision, variables=variables, aliases=aliases)
