"""TranscriptionClient and `marquee transcribe` against a real tritonserver running a
stand-in `transcribe` route that follows the contract (tests/fixtures_audio.py): one
segment per started 7 s, the clip's length measured by the real `audio_features`."""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest
from typer.testing import CliRunner

from clients.transcription import AsyncTranscriptionClient, TranscriptionClient, TranscriptionError
from marquee.errors import InputValidationError, ModelNotReadyError
from marquee.transcription import speech
from marquee.transcription.cli import transcribe
from marquee.transcription.subtitles import coverage_problems, parse_srt, parse_vtt
from marquee.transcription.wer import number_words

pytestmark = pytest.mark.integration

ROUTE = "transcribe_standin"
SEGMENT_S = 7.0


def expected_segments(duration_s: float) -> list[tuple[float, float]]:
    return [
        (round(i * SEGMENT_S, 2), round(min(duration_s, (i + 1) * SEGMENT_S), 2))
        for i in range(math.ceil(duration_s / SEGMENT_S))
    ]


@pytest.fixture(scope="module")
def clip_16s():
    return speech.synthesize(" ".join(speech.SENTENCES[:4]), rate=16_000)


@pytest.fixture
def client(audio_server_alive):
    with TranscriptionClient(audio_server_alive.grpc_url, model=ROUTE, timeout_s=120) as client:
        yield client


def test_path_and_bytes_give_the_contract_segments(client, clip_16s, tmp_path):
    path = tmp_path / "clip.flac"
    path.write_bytes(speech.transcode(clip_16s.wav, "flac"))
    from_path = client.transcribe(path)
    from_bytes = client.transcribe(clip_16s.wav)
    assert from_path == from_bytes
    assert [(s.start, s.end) for s in from_path] == expected_segments(clip_16s.duration_s)
    assert from_path[1].text == " segment 1." and from_path[1].tokens == (50365, 1001)
    transcript = client.transcript(str(path))
    assert transcript.duration_s == pytest.approx(clip_16s.duration_s, abs=1e-3)
    assert (transcript.model, transcript.model_version) == ("standin", "1")
    assert transcript.text.startswith("segment 0. segment 1.")


def test_a_bad_clip_raises_naming_the_file(client, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"these are meeting notes, not audio" * 4)
    with pytest.raises(TranscriptionError, match=r"notes\.wav: .*cannot decode audio"):
        client.transcribe(bad)
    with pytest.raises(InputValidationError, match="does not exist"):
        client.transcribe(tmp_path / "missing.wav")
    with pytest.raises(InputValidationError, match="allowed: a path"):
        client.transcribe(42)


def test_many_clips_in_one_request_fail_only_the_bad_ones(client, clip_16s, tmp_path):
    good = tmp_path / "good.ogg"
    good.write_bytes(speech.transcode(clip_16s.wav, "ogg"))
    sources = [good, b"FAIL on purpose", b"\x00" * 100, clip_16s.wav]
    transcripts = client.transcribe_many(sources, clips_per_request=3)
    assert [t.source for t in transcripts] == [str(good), "<bytes #1>", "<bytes #2>", "<bytes #3>"]
    assert transcripts[0].error is None and transcripts[3].error is None
    assert len(transcripts[0].segments) == len(expected_segments(clip_16s.duration_s))
    assert "stand-in refuses" in transcripts[1].error
    assert "cannot decode audio" in transcripts[2].error
    with pytest.raises(TranscriptionError, match=r"<bytes #2>: .*cannot decode audio"):
        transcripts[2].raise_for_error()


def test_async_client_matches_the_sync_one(audio_server_alive, client, clip_16s):
    sources = [clip_16s.wav, speech.transcode(clip_16s.wav, "wav", 44_100), b"FAIL"]

    async def run():
        async with AsyncTranscriptionClient(audio_server_alive.grpc_url, model=ROUTE, timeout_s=120) as aclient:
            single = await aclient.transcribe(clip_16s.wav)
            many = await aclient.transcribe_many(sources, clips_per_request=1, max_in_flight=2)
            return single, many

    single, many = asyncio.run(run())
    assert single == client.transcribe(clip_16s.wav)
    assert [t.segments for t in many[:2]] == [tuple(single)] * 2
    assert many[2].error is not None


def test_unknown_route_is_reported(audio_server_alive, clip_16s):
    with TranscriptionClient(audio_server_alive.grpc_url, model="no_such_route", timeout_s=30) as client:
        with pytest.raises(ModelNotReadyError, match="no_such_route"):
            client.transcribe(clip_16s.wav)


def _cli(*args: str):
    import typer

    app = typer.Typer()
    app.command()(transcribe)
    return CliRunner().invoke(app, list(args))


def test_cli_writes_valid_subtitles_and_json_with_wer(audio_server_alive, clip_16s, tmp_path):
    audio = tmp_path / "talk.wav"
    audio.write_bytes(clip_16s.wav)
    reference = tmp_path / "talk.txt"
    spoken = [f"segment {number_words(i)}" for i in range(len(expected_segments(clip_16s.duration_s)))]
    reference.write_text(" ".join(spoken[:-1]) + " segment", encoding="utf-8")  # one word short
    srt, vtt, out = tmp_path / "subs" / "talk.srt", tmp_path / "talk.vtt", tmp_path / "talk.json"
    result = _cli(
        str(audio), "--srt", str(srt), "--vtt", str(vtt), "--json", str(out),
        "--url", audio_server_alive.grpc_url, "--model", ROUTE, "--reference", str(reference),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cues = parse_srt(srt.read_text())
    assert [(c.start, c.end) for c in cues] == expected_segments(clip_16s.duration_s)
    assert [(c.start, c.end) for c in parse_vtt(vtt.read_text())] == [(c.start, c.end) for c in cues]
    assert coverage_problems(cues, clip_16s.duration_s) == []
    document = json.loads(out.read_text())
    assert document["source"] == str(audio) and len(document["segments"]) == len(cues)
    # The stand-in says "segment 0. segment 1. ..."; digits are normalised to words, so
    # the only error is the last number, missing from the reference.
    assert document["wer"]["insertions"] == 1 and document["wer"]["reference_words"] == 2 * len(cues) - 1
    assert document["wer"]["wer"] == pytest.approx(1 / (2 * len(cues) - 1))
    assert "1 inserted" in result.output


def test_cli_on_a_folder_keeps_going_past_a_bad_file(audio_server_alive, clip_16s, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.wav").write_bytes(clip_16s.wav)
    (folder / "b.flac").write_bytes(speech.transcode(clip_16s.wav, "flac"))
    (folder / "broken.ogg").write_bytes(b"OggS" + bytes(300))
    (folder / "readme.txt").write_text("not audio, not picked up")
    result = _cli(
        str(folder), "--srt", str(tmp_path / "srt"), "--vtt", str(tmp_path / "vtt"),
        "--url", audio_server_alive.grpc_url, "--model", ROUTE, "--clips-per-request", "2",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "broken.ogg" in result.output and "cannot decode audio" in result.output
    assert "2/3 file(s)" in result.output
    assert sorted(p.name for p in (tmp_path / "srt").iterdir()) == ["a.srt", "b.srt"]
    for name in ("a", "b"):
        assert parse_vtt((tmp_path / "vtt" / f"{name}.vtt").read_text())


def test_cli_rejects_an_input_without_audio(tmp_path):
    result = _cli(str(tmp_path), "--url", "localhost:1")
    flat = re.sub(r"[\s│]+", " ", result.output)  # rich wraps the message inside a box
    assert result.exit_code == 2 and "holds no audio files" in flat
