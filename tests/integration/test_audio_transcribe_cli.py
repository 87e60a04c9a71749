"""Done criterion of the transcription issue: `marquee transcribe` on a synthesized clip
longer than 60 s, through the real `transcribe` route (Whisper tiny.en, FP32), writes SRT
and WebVTT that validate, whose timestamps increase and cover the clip; WER printed.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from marquee.transcription import speech
from marquee.transcription.cli import transcribe
from marquee.transcription.subtitles import coverage_problems, parse_srt, parse_vtt

pytestmark = pytest.mark.integration

# Whisper tiny.en on espeak-ng's voice: a loose bound that still catches a broken
# pipeline (wrong mel, lost windows, bad stitching all push WER far above it).
MAX_WER = 0.35


@pytest.fixture(scope="module")
def whisper_triton(transcribe_triton):
    """The session's transcription server (tests/fixtures_whisper.py): one export, one server."""
    return transcribe_triton


def test_long_clip_gives_valid_covering_subtitles_and_a_wer(whisper_triton, tmp_path):
    if not speech.espeak_available():
        pytest.skip("espeak-ng is not installed")
    clip = speech.long_clip(min_seconds=60)
    audio, reference = tmp_path / "long.wav", tmp_path / "long.txt"
    audio.write_bytes(clip.wav)
    reference.write_text(clip.text, encoding="utf-8")
    srt, vtt, out = tmp_path / "long.srt", tmp_path / "long.vtt", tmp_path / "long.json"
    app = typer.Typer()
    app.command()(transcribe)
    result = CliRunner().invoke(
        app,
        [str(audio), "--srt", str(srt), "--vtt", str(vtt), "--json", str(out), "--reference", str(reference),
         "--url", whisper_triton.grpc_url, "--model", "transcribe", "--timeout", "600"],
    )  # fmt: skip
    print(result.output)
    assert result.exit_code == 0, result.output
    assert clip.duration_s > 60
    cues = parse_srt(srt.read_text(encoding="utf-8"))  # raises on a bad file or non-increasing times
    vtt_cues = parse_vtt(vtt.read_text(encoding="utf-8"))
    assert [(c.start, c.end) for c in vtt_cues] == [(c.start, c.end) for c in cues]
    assert coverage_problems(cues, clip.duration_s) == []
    assert cues[-1].end > 55  # the windows after the first 30 s were transcribed too
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["duration_s"] == pytest.approx(clip.duration_s, abs=0.05)
    assert "WER" in result.output
    assert document["wer"]["wer"] <= MAX_WER, document["wer"]
