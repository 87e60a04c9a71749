"""Hypothesis strategies for hostile requests, generated from the model specs.

`requests_for(spec)` draws a `Case`: the tensors a client puts on the wire for one
request to `spec.name`. Every case starts from what the spec allows (names, dtypes, dims,
`max_batch_size`, value ranges) and then breaks one thing: a dtype, a shape, a missing
or unknown input, a batch out of range, a declared shape that disagrees with the bytes,
a huge tensor, or hostile contents (images, audio, video and text that lie about
themselves, by the input's name). About a fifth are left well-formed, with values drawn
anywhere in the dtype's range, so the model itself sees extreme numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from marquee.specs import DataType, ModelSpec, TensorSpec
from perf.fuzz import payloads

# Sizes a dynamic axis takes: empty, small, and around common limits.
DYNAMIC_SIZES = st.sampled_from([0, 1, 2, 3, 7, 64, 257, 513, 1500])
# The batch sizes tried on batched models, besides in-range ones.
# A "huge" tensor: well past any item limit a route sets, small enough for a shared 2-core CI host.
HUGE_BYTES = 24 * 1024 * 1024
KINDS = (
    "well_formed",
    "wrong_dtype",
    "wrong_shape",
    "missing_input",
    "unknown_input",
    "batch_out_of_range",
    "lying_shape",
    "huge_tensor",
    "hostile_contents",
)
# Inputs that carry a file or text, by the input's name in the spec: what hostile contents to draw.
MEDIA_BY_INPUT = {"image": "image", "images": None, "audio": "audio", "video": "video", "text": "text"}


@dataclass
class WireTensor:
    name: str
    datatype: str  # the wire name ("FP32", "BYTES")
    array: np.ndarray
    declared_shape: list[int] | None = None  # a shape that lies about the array, sent instead of its own

    @property
    def shape(self) -> list[int]:
        return self.declared_shape if self.declared_shape is not None else list(self.array.shape)

    def describe(self) -> str:
        lie = f" (declared {self.declared_shape})" if self.declared_shape is not None else ""
        return f"{self.name}:{self.datatype}{list(self.array.shape)}{lie}"


@dataclass
class Case:
    model: str
    kind: str
    tensors: list[WireTensor]
    protocol: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        return f"{self.model} over {self.protocol}, {self.kind}: {', '.join(t.describe() for t in self.tensors)}{notes}"


# -- values -----------------------------------------------------------------------------


def _fill(draw, dtype: DataType, shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray:
    """An array of `shape`: one drawn fill value plus a few drawn values at drawn places
    (cheap at any size; Whisper's cross-attention inputs hold 600k floats)."""
    numpy = dtype.numpy
    if dtype is DataType.BYTES:
        items = draw(st.lists(_text_item(), min_size=1, max_size=4))
        flat = np.array([items[i % len(items)] for i in range(int(np.prod(shape)))], dtype=np.object_)
        return flat.reshape(shape)
    value = draw(_scalar(dtype, spec))
    array = np.full(shape, value, dtype=numpy)
    if array.size:
        for _ in range(draw(st.integers(0, 3))):
            array.flat[draw(st.integers(0, array.size - 1))] = draw(_scalar(dtype, spec))
    return array


def _scalar(dtype: DataType, spec: TensorSpec):
    if dtype in (DataType.FP32, DataType.FP16):
        width = 32 if dtype is DataType.FP32 else 16
        return st.floats(width=width, allow_nan=True, allow_infinity=True)
    if dtype is DataType.BOOL:
        return st.booleans()
    info = np.iinfo(dtype.numpy)
    lowest, highest = int(info.min), int(info.max)
    anywhere = st.integers(lowest, highest)

    def near(low: int, high: int):  # clamped to the dtype: an out-of-range value cannot be put on the wire
        return st.integers(max(low, lowest), min(high, highest))

    if spec.value_range is None:
        return st.one_of(near(-3, 1000), anywhere)
    low, high = (int(v) for v in spec.value_range)
    return st.one_of(near(low, high), near(low - 3, high + 3), anywhere)


# -- hostile contents -------------------------------------------------------------------


def _text_item():
    unicode_text = st.text(st.characters(codec="utf-8"), max_size=200).map(str.encode)
    surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=8).map(
        lambda s: s.encode("utf-8", "surrogatepass")
    )
    return st.one_of(st.sampled_from(payloads.HOSTILE_TEXTS), unicode_text, surrogates, st.binary(max_size=300))


@functools.lru_cache(maxsize=1)
def _image_bombs() -> tuple[bytes, ...]:
    """Built once: 256 Mpixel and 50 Mpixel RGBA images that compress to a few hundred kB."""
    return (payloads.png(16_000, 16_000), payloads.png(5_000, 10_000, colour_type=6))


@functools.lru_cache(maxsize=1)
def _valid_images() -> tuple[bytes, ...]:
    return (payloads.png(40, 30, colour_type=2), payloads.jpeg(48, 32))


def _mutated(source):
    """A valid file with drawn bytes overwritten, or cut short."""

    @st.composite
    def build(draw):
        data = bytearray(draw(source))
        if draw(st.booleans()):
            return bytes(data[: draw(st.integers(0, max(len(data) - 1, 0)))])
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)

    return build()


def _image_bytes():
    side = st.sampled_from([0, 1, 2, 320, 4096, 65_535, 70_000, 2**31 - 1, 2**32 - 1])
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(payloads.png, side, side, rows=st.integers(0, 3), colour_type=st.sampled_from([0, 2, 3, 4, 6, 7])),
        st.builds(payloads.jpeg_claiming, side, side),
        st.sampled_from(_image_bombs()),
        _mutated(st.sampled_from(_valid_images())),
    )


def _audio_bytes():
    rates = st.one_of(st.sampled_from([0, 1, 7, 8_000, 16_000, 44_100, 192_000, 2**31 - 1, 2**32 - 1]),
                      st.integers(0, 2**32 - 1))  # fmt: skip
    lying_wav = st.builds(
        payloads.wav,
        sample_rate=rates,
        channels=st.sampled_from([0, 1, 2, 3, 255, 65_535]),
        bits=st.sampled_from([0, 1, 4, 8, 12, 16, 24, 32, 64]),
        frames=st.integers(0, 4_000),
        claimed_data_bytes=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        riff_lie=st.integers(-64, 2**31),
    )
    honest = st.sampled_from([payloads.honest_wav(0.5), payloads.honest_wav(0.2, rate=8_000)])
    return st.one_of(st.binary(max_size=2048), lying_wav, _mutated(honest))


@functools.lru_cache(maxsize=1)
def _tiny_mp4() -> bytes:
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 40, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _video_bytes():
    sizes = st.sampled_from([0, 1, 7, 8, 64, 2**31, 2**32 - 1])
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(payloads.mp4_lying, sizes, st.binary(max_size=256)),
        _mutated(st.just(_tiny_mp4())),
    )


def _media_bytes(kind: str):
    return {"image": _image_bytes, "audio": _audio_bytes, "video": _video_bytes, "text": _text_item}[kind]()


def media_kind(spec: ModelSpec, tensor: TensorSpec) -> str | None:
    """What a byte input carries, by its name; None for numeric inputs."""
    if tensor.dtype is DataType.BYTES or (tensor.dtype is DataType.UINT8 and tensor.dims == ("bytes",)):
        return MEDIA_BY_INPUT.get(tensor.name, "text")
    return None


# -- shapes and cases -------------------------------------------------------------------


def _shape(draw, spec: ModelSpec, tensor: TensorSpec, batch: int) -> tuple[int, ...]:
    dims = tuple(d if isinstance(d, int) else draw(DYNAMIC_SIZES) for d in tensor.dims)
    return ((batch,) if spec.batched else ()) + dims


def _well_formed(draw, spec: ModelSpec, tensor: TensorSpec, batch: int) -> WireTensor:
    kind = media_kind(spec, tensor)
    if kind is not None:
        count = batch if spec.batched else draw(st.integers(1, 3))
        items = [draw(_media_bytes(kind)) for _ in range(count)]
        return _byte_tensor(tensor, items)
    shape = _shape(draw, spec, tensor, batch)
    return WireTensor(tensor.name, tensor.dtype.wire_name, _fill(draw, tensor.dtype, shape, tensor))


def _byte_tensor(tensor: TensorSpec, items: list[bytes]) -> WireTensor:
    if tensor.dtype is DataType.BYTES:
        return WireTensor(tensor.name, "BYTES", np.array(items, dtype=np.object_))
    # UINT8 [batch, bytes]: Triton needs one length per batch, so items are padded to the longest.
    width = max((len(item) for item in items), default=0)
    rows = np.zeros((len(items), width), np.uint8)
    for row, item in enumerate(items):
        rows[row, : len(item)] = np.frombuffer(item, np.uint8)
    return WireTensor(tensor.name, "UINT8", rows)


OTHER_DTYPES = [DataType.FP32, DataType.FP16, DataType.INT32, DataType.INT64, DataType.UINT8, DataType.BOOL,
                DataType.BYTES]  # fmt: skip


@st.composite
def requests_for(draw, spec: ModelSpec, protocols: tuple[str, ...] = ("grpc", "http")) -> Case:
    kind = draw(st.sampled_from(KINDS))
    protocol = draw(st.sampled_from(protocols))
    top = max(spec.max_batch_size, 1)
    batch = draw(st.integers(1, min(top, 4)))
    tensors = [_well_formed(draw, spec, t, batch) for t in spec.inputs]
    case = Case(spec.name, kind, tensors, protocol)
    target = draw(st.integers(0, len(tensors) - 1))
    victim, victim_spec = tensors[target], spec.inputs[target]
    if kind == "wrong_dtype":
        dtype = draw(st.sampled_from([d for d in OTHER_DTYPES if d is not victim_spec.dtype]))
        tensors[target] = WireTensor(victim.name, dtype.wire_name, _cast(victim.array, dtype))
    elif kind == "wrong_shape":
        tensors[target] = _reshaped(draw, victim)
    elif kind == "missing_input":
        del tensors[target]
    elif kind == "unknown_input":
        tensors.append(WireTensor(draw(st.sampled_from(["extra", victim.name + "_", "\u202e", "a" * 300])), "INT64",
                                  np.zeros((1, 1), np.int64)))  # fmt: skip
    elif kind == "batch_out_of_range":
        size = draw(st.sampled_from([0, top + 1, top * 4 + 3])) if spec.batched else 0
        tensors = [_well_formed(draw, spec, t, max(size, 1)) for t in spec.inputs]
        tensors = [_rebatched(t, size) for t in tensors]
        case.notes.append(f"batch {size}, max_batch_size {spec.max_batch_size}")
    elif kind == "lying_shape":
        lie = [draw(st.sampled_from([0, 1, 2, 1 << 20, 1 << 31])) for _ in victim.array.shape] or [1 << 20]
        victim.declared_shape = lie
    elif kind == "huge_tensor":
        tensors[target] = _huge(spec, victim_spec)
    elif kind == "hostile_contents":
        media = media_kind(spec, victim_spec)
        if media is None:  # a numeric input: the extremes of its dtype everywhere
            victim.array = np.full_like(victim.array, draw(_scalar(victim_spec.dtype, victim_spec)))
        else:
            count = max(len(victim.array), 1)
            tensors[target] = _byte_tensor(victim_spec, [draw(_media_bytes(media)) for _ in range(count)])
    case.tensors = tensors
    return case


def _cast(array: np.ndarray, dtype: DataType) -> np.ndarray:
    if dtype is DataType.BYTES:
        return np.array([str(v).encode() for v in array.ravel()], dtype=np.object_).reshape(array.shape)
    if array.dtype == np.object_:
        return np.zeros(array.shape, dtype.numpy)
    with np.errstate(all="ignore"):
        return np.nan_to_num(array.astype(np.float64)).astype(dtype.numpy)


def _reshaped(draw, tensor: WireTensor) -> WireTensor:
    array = tensor.array
    choice = draw(st.sampled_from(["add_axis", "drop_axis", "grow_last", "empty", "scalar"]))
    if choice == "add_axis":
        array = array[..., None]
    elif choice == "drop_axis" and array.ndim > 1:
        array = array[..., 0] if array.shape[-1] else np.zeros(array.shape[:-1], array.dtype)
    elif choice == "grow_last" and array.ndim:
        array = np.concatenate([array, array[..., :1] if array.shape[-1] else array], axis=-1)
    elif choice == "empty":
        array = array.reshape(-1)[:0].reshape((0,) + array.shape[1:]) if array.ndim else array.reshape(0)
    else:  # a scalar: one value, or a zero of the dtype when there is none
        array = array.reshape(-1)[:1].reshape(()) if array.size else np.zeros((), array.dtype)
    return WireTensor(tensor.name, tensor.datatype, np.ascontiguousarray(array))


def _rebatched(tensor: WireTensor, size: int) -> WireTensor:
    array = tensor.array
    if size == 0:
        return WireTensor(tensor.name, tensor.datatype, array[:0])
    repeats = -(-size // max(len(array), 1))
    return WireTensor(tensor.name, tensor.datatype, np.concatenate([array] * repeats)[:size])


def _huge(spec: ModelSpec, tensor: TensorSpec) -> WireTensor:
    """About HUGE_BYTES in one tensor: the dynamic axis stretched, or the batch at its maximum."""
    if tensor.dtype is DataType.BYTES:
        return WireTensor(tensor.name, "BYTES", np.array([b"\x00" * HUGE_BYTES], dtype=np.object_))
    item = np.dtype(tensor.dtype.numpy).itemsize
    fixed = int(np.prod([d for d in tensor.dims if isinstance(d, int)] or [1]))
    dynamic = [i for i, d in enumerate(tensor.dims) if not isinstance(d, int)]
    dims = [d if isinstance(d, int) else 1 for d in tensor.dims]
    if dynamic:
        dims[dynamic[0]] = max(HUGE_BYTES // (fixed * item), 1)
        batch = 1
    else:
        batch = max(spec.max_batch_size, 1)
    shape = ((batch,) if spec.batched else ()) + tuple(dims)
    return WireTensor(tensor.name, tensor.dtype.wire_name, np.zeros(shape, tensor.dtype.numpy))
