"""Whisper weights -> transformers `WhisperForConditionalGeneration` (float32).

Two inputs are accepted:
- a CTranslate2 directory (faster-whisper format: model.bin, config.json, tokenizer.json);
- a transformers directory (config.json + safetensors/bin weights), loaded with from_pretrained.

CTranslate2 fuses attention projections: self-attention `linear_0` is [q; k; v] stacked
along the output axis, cross-attention `linear_1` is [k; v]; the fused bias carries zeros
where Whisper's key projection has no bias. Everything else maps one to one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.whisper.ct2_reader import CT2Model, read_ct2_model

log = logging.getLogger(__name__)


class WhisperConversionError(ValueError):
    """The weights do not form a Whisper model this converter understands."""


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids the decoding rules need, read from the tokenizer (they differ between
    English-only and multilingual checkpoints)."""

    eot: int
    sot: int
    transcribe: int
    translate: int
    no_speech: int
    no_timestamps: int
    timestamp_begin: int
    space: int
    vocab_size: int

    @property
    def multilingual(self) -> bool:
        return self.vocab_size >= 51865


def special_tokens(tokenizer_path: Path, vocab_size: int) -> SpecialTokens:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))

    def token(*names: str) -> int:
        for name in names:
            found = tokenizer.token_to_id(name)
            if found is not None:
                return found
        raise WhisperConversionError(f"{tokenizer_path}: no token named any of {names}")

    no_timestamps = token("<|notimestamps|>")
    space = tokenizer.encode(" ", add_special_tokens=False).ids
    if len(space) != 1:
        raise WhisperConversionError(f"{tokenizer_path}: ' ' encodes to {space}; expected one token")
    return SpecialTokens(
        eot=token("<|endoftext|>"),
        sot=token("<|startoftranscript|>"),
        transcribe=token("<|transcribe|>"),
        translate=token("<|translate|>"),
        no_speech=token("<|nospeech|>", "<|nocaptions|>"),
        no_timestamps=no_timestamps,
        timestamp_begin=no_timestamps + 1,
        space=space[0],
        vocab_size=vocab_size,
    )


def language_tokens(tokenizer_path: Path, tokens: SpecialTokens) -> dict[int, str]:
    """Token id -> language code ("es") of a multilingual checkpoint; {} for English-only.
    Whisper's language tokens sit between <|startoftranscript|> and <|translate|>."""
    if not tokens.multilingual:
        return {}
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    out = {}
    for token_id in range(tokens.sot + 1, min(tokens.translate, tokens.transcribe)):
        name = tokenizer.id_to_token(token_id) or ""
        if not (name.startswith("<|") and name.endswith("|>")):
            raise WhisperConversionError(f"{tokenizer_path}: token {token_id} is {name!r}; expected a language token")
        out[token_id] = name[2:-2]
    return out


def is_ct2_directory(directory: Path) -> bool:
    return (Path(directory) / "model.bin").is_file()


def load_whisper(directory: Path):
    """(model in eval mode, float32; special tokens; suppress ids; begin-suppress ids)."""
    directory = Path(directory)
    if is_ct2_directory(directory):
        model = whisper_from_ct2(directory)
    elif (directory / "config.json").is_file():
        from transformers import WhisperForConditionalGeneration

        model = WhisperForConditionalGeneration.from_pretrained(directory, torch_dtype=torch.float32)
    else:
        raise WhisperConversionError(
            f"{directory}: neither a CTranslate2 directory (model.bin) nor a transformers directory (config.json)"
        )
    model.eval()
    tokens = special_tokens(directory / "tokenizer.json", model.config.vocab_size)
    return model, tokens


def _split(array: np.ndarray, parts: int) -> list[torch.Tensor]:
    return [torch.from_numpy(chunk.astype(np.float32)) for chunk in np.split(array, parts, axis=0)]


def _f32(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32))


def _layer_count(ct2: CT2Model, side: str) -> int:
    count = 0
    while f"{side}/layer_{count}/ffn/linear_0/weight" in ct2.variables:
        count += 1
    return count


def _attention(ct2: CT2Model, source: str, target: str, fused_kv_only: bool) -> dict[str, torch.Tensor]:
    """Map a CTranslate2 attention block to transformers' q/k/v/out projections."""
    state = {}
    if fused_kv_only:  # cross-attention: query alone, keys and values fused
        state[f"{target}.q_proj.weight"] = _f32(ct2.get(f"{source}/linear_0/weight"))
        state[f"{target}.q_proj.bias"] = _f32(ct2.get(f"{source}/linear_0/bias"))
        k_w, v_w = _split(ct2.get(f"{source}/linear_1/weight"), 2)
        k_b, v_b = _split(ct2.get(f"{source}/linear_1/bias"), 2)
        out = "linear_2"
    else:
        q_w, k_w, v_w = _split(ct2.get(f"{source}/linear_0/weight"), 3)
        q_b, k_b, v_b = _split(ct2.get(f"{source}/linear_0/bias"), 3)
        state[f"{target}.q_proj.weight"], state[f"{target}.q_proj.bias"] = q_w, q_b
        out = "linear_1"
    if k_b.abs().max() > 0:
        raise WhisperConversionError(f"{source}: key bias is not zero; Whisper's key projection has no bias")
    state[f"{target}.k_proj.weight"] = k_w
    state[f"{target}.v_proj.weight"], state[f"{target}.v_proj.bias"] = v_w, v_b
    state[f"{target}.out_proj.weight"] = _f32(ct2.get(f"{source}/{out}/weight"))
    state[f"{target}.out_proj.bias"] = _f32(ct2.get(f"{source}/{out}/bias"))
    return state


def _norm(ct2: CT2Model, source: str, target: str) -> dict[str, torch.Tensor]:
    return {f"{target}.weight": _f32(ct2.get(f"{source}/gamma")), f"{target}.bias": _f32(ct2.get(f"{source}/beta"))}


def _ffn(ct2: CT2Model, source: str, target: str) -> dict[str, torch.Tensor]:
    state = _norm(ct2, f"{source}/layer_norm", f"{target}.final_layer_norm")
    for ct2_name, hf_name in (("linear_0", "fc1"), ("linear_1", "fc2")):
        state[f"{target}.{hf_name}.weight"] = _f32(ct2.get(f"{source}/{ct2_name}/weight"))
        state[f"{target}.{hf_name}.bias"] = _f32(ct2.get(f"{source}/{ct2_name}/bias"))
    return state


def ct2_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """transformers parameter names -> float32 tensors (the tied output projection omitted)."""
    state: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        state[f"model.encoder.{conv}.weight"] = _f32(ct2.get(f"encoder/{conv}/weight"))
        state[f"model.encoder.{conv}.bias"] = _f32(ct2.get(f"encoder/{conv}/bias"))
    state["model.encoder.embed_positions.weight"] = _f32(ct2.get("encoder/position_encodings/encodings"))
    state.update(_norm(ct2, "encoder/layer_norm", "model.encoder.layer_norm"))
    for i in range(_layer_count(ct2, "encoder")):
        source, target = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        state.update(_norm(ct2, f"{source}/self_attention/layer_norm", f"{target}.self_attn_layer_norm"))
        state.update(_attention(ct2, f"{source}/self_attention", f"{target}.self_attn", fused_kv_only=False))
        state.update(_ffn(ct2, f"{source}/ffn", target))
    state["model.decoder.embed_tokens.weight"] = _f32(ct2.get("decoder/embeddings/weight"))
    state["model.decoder.embed_positions.weight"] = _f32(ct2.get("decoder/position_encodings/encodings"))
    state.update(_norm(ct2, "decoder/layer_norm", "model.decoder.layer_norm"))
    for i in range(_layer_count(ct2, "decoder")):
        source, target = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        state.update(_norm(ct2, f"{source}/self_attention/layer_norm", f"{target}.self_attn_layer_norm"))
        state.update(_attention(ct2, f"{source}/self_attention", f"{target}.self_attn", fused_kv_only=False))
        state.update(_norm(ct2, f"{source}/attention/layer_norm", f"{target}.encoder_attn_layer_norm"))
        state.update(_attention(ct2, f"{source}/attention", f"{target}.encoder_attn", fused_kv_only=True))
        state.update(_ffn(ct2, f"{source}/ffn", target))
    return state


def _check_supported(ct2: CT2Model) -> None:
    if ct2.spec_name != "WhisperSpec":
        raise WhisperConversionError(f"spec `{ct2.spec_name}` is not WhisperSpec")
    # Flags CTranslate2 records for the architecture; Whisper uses pre-norm, GELU (id 3),
    # unscaled embeddings and no ALiBi. Anything else is a different model.
    expected = {"decoder/pre_norm": 1, "decoder/activation": 3, "decoder/scale_embeddings": 0, "decoder/alibi": 0}
    for name, value in expected.items():
        if name in ct2.variables and int(ct2.variables[name]) != value:
            raise WhisperConversionError(f"{name}={int(ct2.variables[name])}; Whisper needs {value}")
    if "decoder/projection/weight" not in ct2.aliases and "decoder/projection/weight" in ct2.variables:
        projection, embeddings = ct2.variables["decoder/projection/weight"], ct2.get("decoder/embeddings/weight")
        if not np.array_equal(projection, embeddings):
            raise WhisperConversionError("output projection is not tied to the token embeddings")


def whisper_config_from_ct2(ct2: CT2Model, directory: Path):
    from transformers import WhisperConfig

    settings = json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else {}
    vocab_size, d_model = ct2.get("decoder/embeddings/weight").shape
    ffn_dim = ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0]
    tokens = special_tokens(directory / "tokenizer.json", vocab_size)
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(ct2.get("encoder/conv1/weight").shape[1]),
        d_model=int(d_model),
        encoder_layers=_layer_count(ct2, "encoder"),
        decoder_layers=_layer_count(ct2, "decoder"),
        encoder_attention_heads=int(ct2.get("encoder/num_heads")),
        decoder_attention_heads=int(ct2.get("decoder/num_heads")),
        encoder_ffn_dim=int(ffn_dim),
        decoder_ffn_dim=int(ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(ct2.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(ct2.get("decoder/position_encodings/encodings").shape[0]),
        decoder_start_token_id=tokens.sot,
        bos_token_id=tokens.eot,
        eos_token_id=tokens.eot,
        pad_token_id=tokens.eot,
        suppress_tokens=settings.get("suppress_ids"),
        begin_suppress_tokens=settings.get("suppress_ids_begin", [tokens.space, tokens.eot]),
        tie_word_embeddings=True,
    )


def whisper_from_ct2(directory: Path):
    """Build a float32 `WhisperForConditionalGeneration` from a CTranslate2 directory."""
    from transformers import WhisperForConditionalGeneration

    directory = Path(directory)
    ct2 = read_ct2_model(directory / "model.bin")
    _check_supported(ct2)
    config = whisper_config_from_ct2(ct2, directory)
    model = WhisperForConditionalGeneration(config)
    state = ct2_state_dict(ct2)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # proj_out is tied to the token embeddings, so it is the only parameter left unset.
    missing = [name for name in missing if name != "proj_out.weight"]
    if missing or unexpected:
        raise WhisperConversionError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if not torch.equal(model.proj_out.weight, model.model.decoder.embed_tokens.weight):
        raise WhisperConversionError("proj_out is not tied to the token embeddings after loading")
    log.info("converted %s (%d variables) to transformers Whisper", directory, len(ct2.variables))
    return model.eval()


def suppress_settings(directory: Path, model) -> tuple[list[int], list[int]]:
    """(suppress ids, begin-suppress ids): CTranslate2's config.json, else the model config."""
    settings_path = Path(directory) / "config.json"
    settings = json.loads(settings_path.read_text()) if is_ct2_directory(directory) else {}
    generation = getattr(model, "generation_config", None)
    suppress = settings.get("suppress_ids") or getattr(generation, "suppress_tokens", None)
    suppress = suppress or model.config.suppress_tokens or []
    begin = settings.get("suppress_ids_begin") or getattr(generation, "begin_suppress_tokens", None)
    begin = begin or model.config.begin_suppress_tokens or []
    return [int(t) for t in suppress], [int(t) for t in begin]
