"""`marquee export ranker`: checkpoint -> FP32 / INT8 ONNX -> validated -> model_repository."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.progress import Progress

from export import artifacts
from export.onnx_export import export_to_onnx
from export.quantize import quantize_int8_qdq_for_tensorrt, quantize_int8_static
from export.ranker import data as data_module
from export.ranker import model as model_module
from export.ranker import train as train_module
from export.ranker.data import Interactions, SyntheticWorld, roc_auc
from export.ranker.train import TrainingConfig, holdout_set, load_checkpoint, predict, save_checkpoint, train
from export.validate import ValidationReport
from marquee.errors import CheckpointError, ExportValidationError
from marquee.paths import cache_dir
from marquee.specs.base import ModelSpec, Precision
from marquee.specs.ranker import CATEGORICAL_FEATURES, RANKER_BY_PRECISION

log = logging.getLogger(__name__)
_HERE = Path(__file__).resolve().parent
TRAINING_SOURCES = [Path(m.__file__) for m in (data_module, model_module, train_module)]
EXPORT_SOURCES = [_HERE / "pipeline.py", _HERE.parent / "onnx_export.py", _HERE.parent / "quantize.py"]
CALIBRATION_ROWS = 8192
CALIBRATION_SEED = 77


@dataclass
class ExportResult:
    spec: ModelSpec
    path: Path
    skipped: bool
    figures: dict


def default_checkpoint(config: TrainingConfig | None = None, progress: Progress | None = None) -> Path:
    """The checkpoint trained from `config`, trained once and cached by content hash."""
    config = config or TrainingConfig()
    key = artifacts.content_hash(json.dumps(config.to_dict(), sort_keys=True), torch.__version__, *TRAINING_SOURCES)
    path = cache_dir() / "checkpoints" / f"ranker-{key}.pt"
    if not path.is_file():
        model, metrics = train(config, progress)
        save_checkpoint(model, config, metrics, path)
    return path


def export_ranker(
    repository: Path,
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.INT8),
    checkpoint: Path | None = None,
    training: TrainingConfig | None = None,
    force: bool = False,
    progress: Progress | None = None,
    version: int | None = None,
) -> list[ExportResult]:
    """`version`: the Triton model version folder to write (default: the spec's, the one
    in service). Another number adds a version next to it without touching it; the
    served config's version_policy names the spec's version only, so the new one loads
    when `marquee rollout start` asks for it."""
    if version is not None and version < 1:
        raise ValueError(f"version={version}; allowed: an integer >= 1")
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(training, progress)
    if not checkpoint.is_file():
        raise CheckpointError(f"--checkpoint {checkpoint}: no such file")
    results, pending = [], []
    for precision in precisions:
        spec = RANKER_BY_PRECISION[precision]
        input_hash = artifacts.content_hash(checkpoint, repr(spec), artifacts.toolchain_fingerprint(), *EXPORT_SOURCES)
        version_dir = repository / spec.name / str(version or spec.version)
        if not force and artifacts.is_current(version_dir, input_hash, spec.artifact):
            stamp = artifacts.read_stamp(version_dir) or {}
            results.append(ExportResult(spec, version_dir / spec.artifact, True, stamp.get("validation", {})))
        else:
            pending.append((spec, input_hash, version_dir))
    if pending:
        results += _export_pending(pending, checkpoint, progress)
    return results


def _export_pending(pending, checkpoint: Path, progress: Progress | None) -> list[ExportResult]:
    model, config, train_metrics = load_checkpoint(checkpoint)
    holdout = holdout_set(config)
    reference = predict(model, holdout)
    task = progress.add_task("export ranker", total=1 + 2 * len(pending)) if progress else None
    results, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = _export_fp32(model, Path(tmp) / "fp32.onnx")
        _advance(progress, task)
        for spec, input_hash, version_dir in pending:
            staged = Path(tmp) / f"{spec.name}.onnx"
            _build_variant(spec, fp32_path, staged, config)
            _advance(progress, task)
            report = validate_ranker(spec, staged, model, holdout, reference)
            _advance(progress, task)
            log.info("%s", report.summary())
            if report.failures:
                failed.append(report)
                continue
            stamp = {
                "input_hash": input_hash,
                "checkpoint": str(checkpoint),
                "training_metrics": train_metrics,
                "validation": report.figures,
            }
            if spec.gpu_artifact:
                gpu_report = _export_gpu_artifact(spec, fp32_path, version_dir, model, holdout, reference, config)
                if gpu_report.failures:
                    failed.append(gpu_report)
                    continue
                stamp["validation_gpu_artifact"] = gpu_report.figures
            path = artifacts.install(staged, version_dir, spec.artifact, stamp)
            results.append(ExportResult(spec, path, False, report.figures))
    if failed:
        raise ExportValidationError("\n".join(r.summary() for r in failed))
    return results


def _advance(progress: Progress | None, task) -> None:
    if progress is not None:
        progress.advance(task)


def _example_inputs(rows: int = 4) -> dict[str, torch.Tensor]:
    sample = SyntheticWorld(0).sample(rows, seed=0)
    return {"categorical": torch.from_numpy(sample.categorical), "dense": torch.from_numpy(sample.dense)}


def _export_fp32(model: torch.nn.Module, path: Path) -> Path:
    return export_to_onnx(model, _example_inputs(), RANKER_BY_PRECISION[Precision.FP32], path)


def _build_variant(spec: ModelSpec, fp32_path: Path, staged: Path, config: TrainingConfig) -> None:
    if spec.precision is Precision.FP32:
        shutil.copyfile(fp32_path, staged)
    elif spec.precision is Precision.INT8:
        # Calibrate on impressions from the training world, disjoint from the holdout.
        calibration = SyntheticWorld(config.world_seed).sample(CALIBRATION_ROWS, CALIBRATION_SEED)
        quantize_int8_static(fp32_path, staged, _batches(calibration, 1024))
    else:
        raise ValueError(f"precision={spec.precision.value!r} is not supported for the ranker; allowed: fp32, int8")


def _export_gpu_artifact(
    spec, fp32_path: Path, version_dir: Path, model, holdout, reference, config
) -> ValidationReport:
    """The QDQ INT8 twin that GPU targets load with TensorRT, checked on the CPU against
    PyTorch with the spec's own tolerances (ONNX Runtime runs QDQ graphs on the CPU too)."""
    calibration = SyntheticWorld(config.world_seed).sample(CALIBRATION_ROWS, CALIBRATION_SEED)
    staged = fp32_path.parent / f"{spec.name}.qdq.onnx"
    quantize_int8_qdq_for_tensorrt(fp32_path, staged, _batches(calibration, 1024))
    report = validate_ranker(spec, staged, model, holdout, reference)
    report.model = f"{spec.name} ({spec.gpu_artifact}, for TensorRT)"
    log.info("%s", report.summary())
    if not report.failures:
        version_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, version_dir / spec.gpu_artifact)
    return report


def _batches(data: Interactions, size: int):
    for start in range(0, len(data), size):
        yield {"categorical": data.categorical[start : start + size], "dense": data.dense[start : start + size]}


def run_onnx(path: Path, data: Interactions, batch_size: int) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["probability"], feed)[0] for feed in _batches(data, batch_size)])


def _edge_cases() -> Interactions:
    """Single rows and out-of-vocabulary ids (negative, just past the end, huge)."""
    sample = SyntheticWorld(0).sample(4, seed=5)
    categorical = sample.categorical.copy()
    categorical[1] = -1
    categorical[2] = [f.cardinality for f in CATEGORICAL_FEATURES]
    categorical[3] = np.iinfo(np.int64).max
    return Interactions(categorical, sample.dense, sample.clicked, sample.true_probability)


def validate_ranker(
    spec: ModelSpec, onnx_path: Path, model: torch.nn.Module, holdout: Interactions, reference: np.ndarray
) -> ValidationReport:
    report = ValidationReport(spec.name)
    tolerance = spec.tolerance
    candidate = run_onnx(onnx_path, holdout, spec.max_batch_size)
    report.close_to(
        "probability[holdout]",
        reference,
        candidate,
        tolerance.atol,
        tolerance.rtol,
        tolerance.mean_atol,
        tolerance.p999_atol,
    )
    edges = _edge_cases()
    report.close_to(
        "probability[batch 1, OOV ids]", predict(model, edges), run_onnx(onnx_path, edges, 1), tolerance.atol
    )
    auc_torch, auc_onnx = roc_auc(holdout.clicked, reference), roc_auc(holdout.clicked, candidate)
    report.figures.update(holdout_auc_pytorch=auc_torch, holdout_auc_onnx=auc_onnx)
    if tolerance.max_auc_drop is not None:
        report.at_most("auc_drop", auc_torch - auc_onnx, tolerance.max_auc_drop)
    return report
