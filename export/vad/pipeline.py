"""`silero_vad`: copy Silero VAD v6 out of the faster-whisper package into the model
repository, checked before it is installed; skipped when unchanged (content hash).

Checks, on two espeak-ng sentences followed by 3 s of silence:
- the ONNX graph has the inputs and outputs the spec names;
- scored the way the route scores (marquee/routes/transcribe/vad.py: blocks, state
  carried between calls), the speech probabilities equal faster-whisper's own wrapper
  (`faster_whisper.vad.get_vad_model()`, one call for the whole clip) within the spec's
  tolerance: the block-wise state handoff and the context framing are right;
- speech must score higher than silence on average (mean probabilities are recorded).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from export import artifacts
from export.validate import ValidationReport
from marquee.routes.transcribe import vad as route_vad
from marquee.specs.vad import SILERO_VAD, VAD_MODELS

log = logging.getLogger(__name__)
ASSET = "silero_vad_v6.onnx"
# Small blocks in validation so that the clip crosses several state handoffs.
VALIDATION_BLOCK_FRAMES = 100


def source_file() -> Path:
    import faster_whisper

    path = Path(faster_whisper.__file__).parent / "assets" / ASSET
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; install faster-whisper==1.2.1 (it ships Silero VAD v6)")
    return path


def version_dir(repository: Path) -> Path:
    return Path(repository) / SILERO_VAD.name / str(SILERO_VAD.version)


def export_silero_vad(repository: Path, force: bool = False) -> bool:
    """Install `model.onnx`; returns False when already current."""
    source = source_file()
    input_hash = artifacts.content_hash(
        repr(VAD_MODELS), f"faster-whisper={metadata.version('faster-whisper')}", source, Path(__file__)
    )
    target = version_dir(repository)
    if not force and artifacts.is_current(target, input_hash, SILERO_VAD.artifact):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.onnx"
        shutil.copyfile(source, staged)
        report = validate(staged)
        log.info("%s", report.summary())
        report.raise_if_failed()
        artifacts.install(staged, target, SILERO_VAD.artifact, {"input_hash": input_hash, "validation": report.figures})
    return True


def test_signal(rate: int = 16_000) -> tuple[np.ndarray, slice, slice]:
    """(espeak-ng speech then 3 s of silence, the speech part, the silent tail)."""
    from marquee.transcription import speech

    spoken = speech.decode_16k(speech.synthesize(" ".join(speech.SENTENCES[:2])).wav)
    samples = np.concatenate([spoken, np.zeros(3 * rate, np.float32)])
    return samples, slice(0, spoken.size), slice(spoken.size + rate // 2, samples.size)


def route_probs(session, samples: np.ndarray, block_frames: int) -> np.ndarray:
    frames = route_vad.frame_count(samples.size)
    h = c = np.zeros(route_vad.STATE_SHAPE, np.float32)
    out = []
    for first in range(0, frames, block_frames):
        block = route_vad.model_input(samples, first, min(block_frames, frames - first))
        probs, h, c = session.run(["speech_probs", "hn", "cn"], {"input": block, "h": h, "c": c})
        out.append(probs.reshape(-1))
    return np.concatenate(out)


def validate(model_path: Path) -> ValidationReport:
    import onnxruntime as ort
    from faster_whisper.vad import get_vad_model

    report = ValidationReport("silero_vad (route's block-wise scoring vs faster-whisper's wrapper)")
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()} | {o.name for o in session.get_outputs()}
    expected = {t.name for t in (*SILERO_VAD.inputs, *SILERO_VAD.outputs)}
    report.at_most("spec_tensors_missing_from_graph", float(len(expected - names)), 0.0)
    samples, loud, silent = test_signal()
    padded = np.zeros(route_vad.frame_count(samples.size) * route_vad.FRAME, np.float32)
    padded[: samples.size] = samples
    reference = np.asarray(get_vad_model()(padded.copy())).reshape(-1)
    ours = route_probs(session, samples, VALIDATION_BLOCK_FRAMES)
    tolerance = SILERO_VAD.tolerance
    report.close_to("speech_probs", reference, ours, tolerance.atol, mean_atol=tolerance.mean_atol)
    frame = route_vad.FRAME
    report.figures["mean_prob_speech"] = float(ours[loud.start // frame : loud.stop // frame].mean())
    report.figures["mean_prob_silence"] = float(ours[silent.start // frame : silent.stop // frame].mean())
    margin = report.figures["mean_prob_silence"] - report.figures["mean_prob_speech"]
    report.at_most("silence_minus_speech_mean_prob", margin, -0.3)
    return report
