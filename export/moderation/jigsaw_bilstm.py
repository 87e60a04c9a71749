"""A model trained on real comments: the Jigsaw toxic-comment BiLSTM of the
`toxic-comment-classifier` package, rebuilt in PyTorch from its Keras weights and
exported to ONNX. No TensorFlow anywhere.

The package ships `model.weights.h5` (Keras 3 weights) and `tokenizer.pickle` (a pickled
Keras `Tokenizer`). Its architecture (from the package's own `model.py`):
word ids [100] -> Embedding(20000, 50) -> Bidirectional(LSTM(50), full sequence)
-> GlobalMaxPooling1D -> Dense(50, relu) -> Dense(6, sigmoid) over the six Jigsaw
labels. No masking: padding positions run through the LSTM and the max-pool like words.

Weights are read with h5py by path. Keras stores an LSTM as kernel [in, 4u],
recurrent_kernel [u, 4u] and one bias [4u], gates in the order input, forget, cell,
output, which is PyTorch's order too (i, f, g, o); PyTorch has two biases, so the Keras
bias goes in `bias_ih` and `bias_hh` is zero.

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
import torch

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


# -- the model ---------------------------------------------------------------------------


class JigsawBiLSTM(torch.nn.Module):
    """word ids int64 [batch, 100] -> sigmoid probabilities [batch, 6]."""

    def __init__(self, weights: dict[str, np.ndarray]):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB_SIZE, EMBEDDING_DIM)
        self.lstm = torch.nn.LSTM(EMBEDDING_DIM, UNITS, batch_first=True, bidirectional=True)
        self.dense = torch.nn.Linear(2 * UNITS, HIDDEN)
        self.out = torch.nn.Linear(HIDDEN, len(JIGSAW_LABELS))
        with torch.no_grad():
            self.embedding.weight.copy_(torch.from_numpy(weights["embedding"]))
            for direction, suffix in (("forward", ""), ("backward", "_reverse")):
                getattr(self.lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(weights[f"{direction}_kernel"].T))
                getattr(self.lstm, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(weights[f"{direction}_recurrent"].T))
                getattr(self.lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(weights[f"{direction}_bias"]))
                getattr(self.lstm, f"bias_hh_l0{suffix}").zero_()
            self.dense.weight.copy_(torch.from_numpy(weights["dense_kernel"].T))
            self.dense.bias.copy_(torch.from_numpy(weights["dense_bias"]))
            self.out.weight.copy_(torch.from_numpy(weights["out_kernel"].T))
            self.out.bias.copy_(torch.from_numpy(weights["out_bias"]))

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.lstm(self.embedding(word_ids))
        pooled = sequence.max(dim=1).values
        return torch.sigmoid(self.out(torch.relu(self.dense(pooled))))


def export_onnx(model: JigsawBiLSTM, path: Path, spec) -> Path:
    from export.onnx_export import export_to_onnx

    example = {"word_ids": torch.zeros((2, MAXLEN), dtype=torch.int64)}
    export_to_onnx(model.eval(), example, spec, path)
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
        onnx_path = export_onnx(JigsawBiLSTM(weights), Path(tmp) / "model.onnx", JIGSAW_BILSTM)
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
