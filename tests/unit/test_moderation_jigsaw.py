"""The Jigsaw BiLSTM rebuilt from its Keras weights: ONNX against Keras itself (torch
backend) and a numpy LSTM, word ids against Keras's tokenizer, and a tokenizer pickle
that tries to run code refused."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from export.moderation import jigsaw_bilstm as jigsaw
from export.moderation.natural_set import load_natural_set
from marquee.specs.moderation_text import JIGSAW_BILSTM

pytest.importorskip("h5py")
TEXTS = [c.text for c in load_natural_set()[::12]] + ["", "!!!", "ÜNÏCÖDÉ idiot idiot " * 40]


@pytest.fixture(scope="module")
def package():
    try:
        directory = jigsaw.package_directory()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    return (
        directory,
        jigsaw.read_weights(directory / "model.weights.h5"),
        jigsaw.extract_vocabulary(directory / "tokenizer.pickle"),
    )


def test_onnx_matches_a_numpy_lstm_written_from_the_h5_arrays(package, tmp_path):
    import onnxruntime as ort

    _, weights, vocabulary = package
    ids = vocabulary.encode(TEXTS)
    assert ids.shape == (len(TEXTS), jigsaw.MAXLEN) and (ids[-3] == 0).all()  # "" is all padding
    onnx_path = jigsaw.export_onnx(weights, tmp_path / "model.onnx", JIGSAW_BILSTM)
    served = ort.InferenceSession(str(onnx_path)).run(["probabilities"], {"word_ids": ids})[0]
    np.testing.assert_allclose(served, jigsaw.numpy_reference(weights, ids), atol=1e-5)
    # Not a constant: an insult scores far above a compliment.
    scores = ort.InferenceSession(str(onnx_path)).run(
        None, {"word_ids": vocabulary.encode(["you are a stupid idiot", "what a lovely film"])}
    )[0]
    assert scores[0, 0] > 0.9 > 0.1 > scores[1, 0]


@pytest.mark.slow  # importing Keras alone takes 10 s to minutes on a busy 2-core host
def test_onnx_and_word_ids_match_keras_itself(package, tmp_path):
    import onnxruntime as ort

    directory, weights, vocabulary = package
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from keras.src.utils import pad_sequences

    # The package's own tokenizer object (a trusted file, unpickled here in the test only)
    # and its own architecture, rebuilt with Keras and loading the same weights file.
    with open(directory / "tokenizer.pickle", "rb") as f:
        tokenizer = pickle.load(f)  # noqa: S301 - the reference, never in the product
    keras_ids = pad_sequences(tokenizer.texts_to_sequences(TEXTS), maxlen=jigsaw.MAXLEN)
    assert (keras_ids == vocabulary.encode(TEXTS)).all()
    layers = keras.layers
    inputs = keras.Input(shape=(jigsaw.MAXLEN,))
    x = layers.Embedding(jigsaw.VOCAB_SIZE, jigsaw.EMBEDDING_DIM, trainable=False)(inputs)
    x = layers.Bidirectional(layers.LSTM(jigsaw.UNITS, return_sequences=True))(x)
    x = layers.Dense(jigsaw.HIDDEN, activation="relu")(layers.GlobalMaxPooling1D()(x))
    model = keras.Model(inputs, layers.Dense(len(jigsaw.JIGSAW_LABELS), activation="sigmoid")(layers.Dropout(0.1)(x)))
    model.compile(loss="binary_crossentropy", optimizer="adam")  # the weights file carries optimizer state
    model.load_weights(str(directory / "model.weights.h5"))
    onnx_path = jigsaw.export_onnx(weights, tmp_path / "model.onnx", JIGSAW_BILSTM)
    served = ort.InferenceSession(str(onnx_path)).run(["probabilities"], {"word_ids": keras_ids.astype(np.int64)})[0]
    np.testing.assert_allclose(served, model.predict(keras_ids, verbose=0), atol=1e-5)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_a_tokenizer_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "tokenizer.pickle"
    path.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(pickle.UnpicklingError, match="refers to posix.system; only a Keras Tokenizer is allowed"):
        jigsaw.extract_vocabulary(path)
