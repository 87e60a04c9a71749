"""`marquee transcribe`: audio files (or a folder of them) -> SRT, WebVTT and JSON.

    marquee transcribe talk.flac --srt talk.srt --vtt talk.vtt
    marquee transcribe recordings/ --srt subs/ --json out/ --model transcribe_int8
    marquee transcribe clip.wav --reference clip.txt       # prints the WER too

With a folder, --srt/--vtt/--json name output folders (one `<stem>.srt` per file) and
--reference a folder of `<stem>.txt`. The route answers a clip all at once, so the
progress bar advances per file, weighted by each file's duration. What is written is
read back with the strict SRT/WebVTT parser before the command reports success.
Runs standalone too: `python -m marquee.transcription.cli`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console

# What a folder of inputs is scanned for: the route decodes any container FFmpeg reads,
# and takes the audio track of video files.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".mp4", ".mov", ".mkv")


def audio_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    raise typer.BadParameter(f"INPUT {str(source)!r} is neither a file nor a folder")


def probe_duration(path: Path) -> float | None:
    """Seconds of audio from the container's header (None when it does not say)."""
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / 1_000_000
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except Exception:  # noqa: BLE001 - only a progress weight; the server decides what is audio
        return None
    return None


def output_path(option: Path | None, source: Path, suffix: str, many: bool) -> Path | None:
    """Where a per-file output goes: the option itself for one file, `<option>/<stem><suffix>`
    for a folder of inputs (the folder is created)."""
    if option is None:
        return None
    if many:
        option.mkdir(parents=True, exist_ok=True)
        return option / f"{source.stem}{suffix}"
    option.parent.mkdir(parents=True, exist_ok=True)
    return option


def _reference_text(reference: Path | None, source: Path, many: bool) -> str | None:
    if reference is None:
        return None
    path = reference / f"{source.stem}.txt" if many else reference
    if not path.is_file():
        if many:
            return None  # files without a reference get no WER
        raise typer.BadParameter(f"--reference {str(path)!r} is not a file")
    return path.read_text(encoding="utf-8")


def write_outputs(transcript, srt: Path | None, vtt: Path | None, json_path: Path | None, wer=None) -> list[Path]:
    """Write and read back the requested files; returns their paths."""
    from marquee.transcription.subtitles import parse_srt, parse_vtt, to_srt, to_vtt

    written = []
    if srt is not None:
        srt.write_text(to_srt(transcript.segments), encoding="utf-8")
        parse_srt(srt.read_text(encoding="utf-8"))
        written.append(srt)
    if vtt is not None:
        vtt.write_text(to_vtt(transcript.segments, getattr(transcript, "language", None)), encoding="utf-8")
        parse_vtt(vtt.read_text(encoding="utf-8"))
        written.append(vtt)
    if json_path is not None:
        document = {
            "source": transcript.source,
            "duration_s": transcript.duration_s,
            "model": transcript.model,
            "model_version": transcript.model_version,
            "language": getattr(transcript, "language", None),
            "task": getattr(transcript, "task", None),
            "text": transcript.text,
            "segments": [
                {"start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens)} for s in transcript.segments
            ],
        }
        if wer is not None:
            document["wer"] = {
                "wer": wer.wer,
                "substitutions": wer.substitutions,
                "deletions": wer.deletions,
                "insertions": wer.insertions,
                "reference_words": wer.reference_words,
            }
        json_path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(json_path)
    return written


def _client(url, model: str, timeout: float, mode: str | None, language: str | None, task: str):
    from clients.transcription import TranscriptionClient
    from marquee.errors import InputValidationError

    try:
        return TranscriptionClient(url, model=model, timeout_s=timeout, mode=mode, language=language, task=task)
    except InputValidationError as error:
        raise typer.BadParameter(str(error)) from None


def transcribe(
    source: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Audio or video file (WAV, MP3, M4A, MP4, MKV, ...) or a folder.")
    ],
    srt: Annotated[Path | None, typer.Option("--srt", help="SRT file (a folder when INPUT is a folder).")] = None,
    vtt: Annotated[Path | None, typer.Option("--vtt", help="WebVTT file (a folder when INPUT is a folder).")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="JSON file with segments and tokens (a folder for a folder).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Triton gRPC address; default localhost:8001.")] = None,
    model: Annotated[
        str,
        typer.Option(
            help="Route: transcribe / transcribe_int8 (tiny.en, English, fast) or transcribe_base / "
            "transcribe_base_int8 (multilingual; `marquee export transcription --model base` first)."
        ),
    ] = "transcribe",
    language: Annotated[
        str | None, typer.Option(help="Spoken language as a Whisper code (es, fr, ...); default: identify it.")
    ] = None,
    task: Annotated[
        str, typer.Option(help="transcribe (in the spoken language) or translate (into English captions).")
    ] = "transcribe",
    mode: Annotated[
        str | None, typer.Option(help="batched (VAD chunks, the route's default) or sequential (30 s seek).")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="Reference text file to score the WER against (a folder of <stem>.txt for a folder)."),
    ] = None,
    clips_per_request: Annotated[int, typer.Option(min=1, help="Files sent per request (the route batches them).")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one request.")] = 3600.0,
) -> None:
    """Transcribe audio into SRT / WebVTT / JSON through the `transcribe` route."""
    from rich.markup import escape

    from marquee.errors import InferenceError
    from marquee.progress import media_progress
    from marquee.transcription.wer import WerResult, word_error_rate

    files = audio_files(source)
    if not files:
        raise typer.BadParameter(f"INPUT {str(source)!r} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    many = source.is_dir()
    weights = {path: probe_duration(path) or 1.0 for path in files}
    failures: list[str] = []
    totals = [0, 0, 0, 0]  # substitutions, deletions, insertions, reference words
    audio_seconds = 0.0
    started = time.perf_counter()
    progress = media_progress("audio")
    client = _client(url, model, timeout, mode, language, task)
    with client, progress:
        task = progress.add_task(f"{len(files)} file(s)", total=sum(weights.values()))
        for start in range(0, len(files), clips_per_request):
            chunk = files[start : start + clips_per_request]
            progress.update(task, description=escape(", ".join(p.name for p in chunk)))
            try:
                transcripts = client.transcribe_many(chunk, clips_per_request=len(chunk))
            except InferenceError as error:
                failures += [f"{path}: {error}" for path in chunk]
                progress.advance(task, sum(weights[p] for p in chunk))
                continue
            for path, transcript in zip(chunk, transcripts, strict=True):
                progress.advance(task, weights[path])
                if transcript.error is not None:
                    failures.append(f"{path}: {transcript.error}")
                    continue
                audio_seconds += transcript.duration_s or 0.0
                reference_text = _reference_text(reference, path, many)
                wer = word_error_rate(reference_text, transcript.text) if reference_text is not None else None
                written = write_outputs(
                    transcript,
                    output_path(srt, path, ".srt", many),
                    output_path(vtt, path, ".vtt", many),
                    output_path(json_out, path, ".json", many),
                    wer,
                )
                line = f"[green]✓[/] {escape(str(path))}: {transcript.duration_s:.1f} s, "
                line += f"{len(transcript.segments)} segments"
                if transcript.language:
                    line += f", language {transcript.language}"
                if wer is not None:
                    line += f", {wer}"
                    for i, value in enumerate((wer.substitutions, wer.deletions, wer.insertions, wer.reference_words)):
                        totals[i] += value
                progress.console.print(line + "".join(f"\n    wrote {escape(str(p))}" for p in written))
                if not (srt or vtt or json_out):
                    progress.console.print(transcript.text, markup=False)
    elapsed = time.perf_counter() - started
    console.print(
        f"{len(files) - len(failures)}/{len(files)} file(s), {audio_seconds:.1f} s of audio in {elapsed:.1f} s "
        f"({audio_seconds / elapsed if elapsed else 0:.1f}x real time)"
    )
    if many and totals[3]:
        overall = WerResult(*totals, hypothesis_words=0)
        console.print(f"overall WER {overall.wer:.2%} over {totals[3]} reference words")
    for failure in failures:
        console.print(f"[red]✗ {escape(failure)}")
    if failures:
        raise typer.Exit(1)


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(transcribe)
    app()


if __name__ == "__main__":
    main()
