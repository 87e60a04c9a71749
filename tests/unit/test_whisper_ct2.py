"""CTranslate2 model.bin reader and the CT2 -> transformers converter.

The converter's acceptance check: on the same weights and the same log-mel, the
converted PyTorch model's greedy transcript (tokens and segment times) equals
faster-whisper's (CTranslate2, float32, beam 1, temperature 0, no VAD, timestamps on).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from export.whisper.ct2_reader import CT2FormatError, read_ct2_model
from export.whisper.pipeline import default_source


def _name(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_file(variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> bytes:
    dtype_ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}
    out = struct.pack("<I", version) + _name("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, array in variables.items():
        out += _name(name) + struct.pack("<B", array.ndim) + b"".join(struct.pack("<I", d) for d in array.shape)
        out += struct.pack("<B", dtype_ids[array.dtype]) + struct.pack("<I", array.nbytes) + array.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _name(alias) + _name(target)
    return out


def test_reader_returns_arrays_scalars_and_aliases_as_written(tmp_path):
    weights = np.arange(6, dtype=np.float16).reshape(2, 3)
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_file({"a/weight": weights, "a/heads": np.array(6, np.int16)}, {"b/weight": "a/weight"}))
    model = read_ct2_model(path)
    assert (model.spec_name, model.revision) == ("WhisperSpec", 3)
    np.testing.assert_array_equal(model.get("b/weight"), weights)
    assert model.get("a/weight").dtype == np.float16 and int(model.get("a/heads")) == 6


def test_reader_refuses_unknown_versions_and_truncated_files(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_file({"w": np.zeros(4, np.float32)}, {}, version=99))
    with pytest.raises(CT2FormatError, match="binary version 99"):
        read_ct2_model(path)
    path.write_bytes(_ct2_file({"w": np.zeros(4, np.float32)}, {})[:-10])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_model(path)


def test_shipped_tiny_en_has_whisper_layout():
    model = read_ct2_model(default_source() / "model.bin")
    assert model.spec_name == "WhisperSpec" and len(model.variables) == 148
    assert model.get("decoder/projection/weight").shape == (51864, 384)  # an alias of the embeddings
    assert model.get("encoder/conv1/weight").dtype == np.float16


def test_converted_weights_are_float32_and_tied(whisper_torch):
    model, rules = whisper_torch
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert (rules.eot, rules.sot_sequence, rules.timestamp_begin) == (50256, (50257,), 50363)


def test_converted_model_transcribes_like_faster_whisper(whisper_torch, espeak_clips, tmp_path):
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    from export.whisper.reference import clip_tokens, transcribe_mel

    clip = espeak_clips.get("The quick brown fox jumps over the lazy dog. Broadcasters need accurate subtitles.")
    path = tmp_path / "clip.wav"
    path.write_bytes(clip.wav)
    runtime = WhisperModel(str(default_source()), device="cpu", compute_type="float32", cpu_threads=2)
    segments, _ = runtime.transcribe(
        str(path), beam_size=1, temperature=0, vad_filter=False, condition_on_previous_text=False
    )
    segments = list(segments)
    audio = decode_audio(str(path))
    model, rules = whisper_torch
    mine, _ = transcribe_mel(model, runtime.feature_extractor(audio), len(audio), rules)
    assert clip_tokens(mine) == [t for s in segments for t in s.tokens]
    assert [(round(s.start, 2), round(s.end, 2)) for s in mine] == [
        (round(s.start, 2), round(s.end, 2)) for s in segments
    ]
    assert len(segments) >= 1
