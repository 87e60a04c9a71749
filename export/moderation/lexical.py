"""Stage 1: alt-profanity-check's scikit-learn model as one ONNX graph with string input.

The package ships a fitted `TfidfVectorizer` and a `CalibratedClassifierCV` (linear SVM
with sigmoid calibration). skl2onnx converts both into a graph that tokenises, looks up
TF-IDF weights and applies the calibrated classifiers, so the server needs no Python
text processing at all. Two adjustments make the graph agree with scikit-learn:
- `locale` C.UTF-8 for the StringNormalizer (lower-casing): ONNX Runtime otherwise asks
  for en_US.UTF-8, which slim images lack, and refuses to load the graph;
- a Unicode token pattern: skl2onnx replaces scikit-learn's `(?u)\\b\\w\\w+\\b` with the
  ASCII-only `[a-zA-Z0-9_]+`, which splits "naïve" into "na" + "ve" and can hit
  vocabulary words that scikit-learn never sees.
The graph's two outputs (label, probabilities) are reduced to `profanity` = P(offensive),
shaped [batch, 1] as the spec says.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import onnx
from onnx import TensorProto, helper

from export.validate import ValidationReport
from marquee.specs.moderation_text import PROFANITY_LEXICAL

# Runs of two or more letters, digits or underscores: what Python's `\w\w+` matches
# between word boundaries, written in RE2 syntax (ONNX Runtime's Tokenizer uses RE2).
UNICODE_TOKEN_PATTERN = r"[\p{L}\p{N}_][\p{L}\p{N}_]+"
LOCALE = "C.UTF-8"

# Beyond the labelled set (ASCII), texts that exercise case folding and Unicode tokens.
UNICODE_SAMPLES = (
    "Ünïcödé naïve café façade",
    "ÜBER SCHEIßE straße",
    "日本語 テキスト idiot",
    "emoji 😀 idiot_x x_idiot idiot2",
    "ДУРАК идиот",
    "ça c'est NUL, espèce d'IDIOT",
    "   ",
    "a",
)


def profanity_check_files() -> tuple[Path, Path]:
    """The vectorizer and model files inside the installed alt-profanity-check package."""
    import profanity_check

    data = Path(profanity_check.__file__).parent / "data"
    return data / "vectorizer.joblib", data / "model.joblib"


def load_reference():
    vectorizer_path, model_path = profanity_check_files()
    return joblib.load(vectorizer_path), joblib.load(model_path)


def reference_scores(texts: list[str], vectorizer=None, model=None) -> np.ndarray:
    """scikit-learn's P(offensive) for each text: the number the ONNX graph must reproduce."""
    if vectorizer is None or model is None:
        vectorizer, model = load_reference()
    return model.predict_proba(vectorizer.transform(texts))[:, 1]


def build_lexical_onnx(path: Path, vectorizer=None, model=None) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.pipeline import make_pipeline

    if vectorizer is None or model is None:
        vectorizer, model = load_reference()
    graph_model = convert_sklearn(
        make_pipeline(vectorizer, model),
        name=PROFANITY_LEXICAL.name,
        initial_types=[(PROFANITY_LEXICAL.inputs[0].name, StringTensorType([None, 1]))],
        options={
            id(model): {"zipmap": False},
            id(vectorizer): {"locale": LOCALE, "tokenexp": UNICODE_TOKEN_PATTERN},
        },
    )
    _keep_offensive_probability(graph_model.graph)
    onnx.checker.check_model(graph_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph_model, path)
    return path


def _keep_offensive_probability(graph: onnx.GraphProto) -> None:
    """Replace the outputs (label, probabilities[batch, 2]) by probabilities[:, 1:2]."""
    output = PROFANITY_LEXICAL.outputs[0].name
    graph.initializer.extend(
        [
            helper.make_tensor("offensive_start", TensorProto.INT64, [1], [1]),
            helper.make_tensor("offensive_end", TensorProto.INT64, [1], [2]),
            helper.make_tensor("class_axis", TensorProto.INT64, [1], [1]),
        ]
    )
    graph.node.append(
        helper.make_node("Slice", ["probabilities", "offensive_start", "offensive_end", "class_axis"], [output])
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 1]))


def validate_lexical(path: Path, texts: list[str], report: ValidationReport) -> None:
    """ONNX Runtime vs scikit-learn on `texts` plus the Unicode samples."""
    import onnxruntime as ort

    vectorizer, model = load_reference()
    samples = list(texts) + list(UNICODE_SAMPLES)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    served = session.run(None, {"text": np.array(samples, dtype=object)[:, None]})[0][:, 0]
    reference = reference_scores(samples, vectorizer, model)
    report.close_to("profanity", reference, served, PROFANITY_LEXICAL.tolerance.atol)
