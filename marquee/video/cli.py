"""`marquee video analyze`: video files (or a folder of them) -> shot lists (JSON) and
contact sheets (PNG), through the `analyze_video` route.

    marquee video analyze take_03.mp4 --json take_03.json --contact-sheet take_03.png
    marquee video analyze dailies/ --json shots/ --contact-sheet sheets/

With a folder, --json and --contact-sheet name output folders (`<stem>.json`,
`<stem>.png` per file). One file per request: the route answers a file all at once, so
the progress bar advances per file, weighted by each file's duration. A file the route
refuses is listed with its reason at the end (exit code 1); the others are still written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from marquee.console import console

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
video_app = typer.Typer(help="Analyse video through the analyze_video route.", no_args_is_help=True)


def video_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    raise typer.BadParameter(f"INPUT {str(source)!r} is neither a file nor a folder")


def analysis_document(analysis) -> dict:
    """The route's answer as written to --json; keyframe JPEGs are left out (they go on the
    contact sheet), embeddings are kept (near-duplicate search across a library)."""
    document = json.loads(json.dumps(analysis.raw))
    for shot in document.get("shots", []):
        if shot.get("keyframe"):
            shot["keyframe"].pop("jpeg_base64", None)
    return {"source": analysis.source, **document}


@video_app.command("analyze")
def analyze(
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="Video file or a folder of them.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Shot list JSON (a folder for a folder).")] = None,
    contact_sheet: Annotated[
        Path | None, typer.Option("--contact-sheet", help="Contact sheet PNG (a folder for a folder).")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Triton gRPC address; default localhost:8001.")] = None,
    model: Annotated[str, typer.Option(help="Route name.")] = "analyze_video",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one file.")] = 3600.0,
) -> None:
    """Shots, keyframes and safe thumbnails of video files."""
    from rich.markup import escape

    from clients.video import VideoClient
    from marquee.errors import InferenceError
    from marquee.progress import media_progress
    from marquee.transcription.cli import output_path, probe_duration
    from marquee.video import contact_sheet as sheets

    files = video_files(source)
    if not files:
        raise typer.BadParameter(f"INPUT {str(source)!r} holds no video files ({', '.join(VIDEO_SUFFIXES)})")
    many = source.is_dir()
    weights = {path: probe_duration(path) or 1.0 for path in files}
    failures: list[str] = []
    video_seconds = 0.0
    started = time.perf_counter()
    progress = media_progress("video")
    with VideoClient(url, model=model, timeout_s=timeout) as client, progress:
        task = progress.add_task(f"{len(files)} file(s)", total=sum(weights.values()))
        for path in files:
            progress.update(task, description=escape(path.name))
            try:
                (analysis,) = client.analyze_many([path])
            except InferenceError as error:
                analysis = None
                failures.append(f"{path}: {error}")
            progress.advance(task, weights[path])
            if analysis is None:
                continue
            if analysis.error is not None:
                failures.append(f"{path}: {analysis.error}")
                continue
            video_seconds += analysis.duration_s
            written = []
            json_path = output_path(json_out, path, ".json", many)
            if json_path is not None:
                json_path.write_text(json.dumps(analysis_document(analysis), indent=1) + "\n", encoding="utf-8")
                written.append(json_path)
            sheet_path = output_path(contact_sheet, path, ".png", many)
            if sheet_path is not None:
                title = f"{path.name}  {analysis.duration_s:.1f} s  {len(analysis.shots)} shots"
                written.append(sheets.write(analysis, sheet_path, title))
            line = f"[green]✓[/] {escape(str(path))}: {analysis.duration_s:.1f} s, {len(analysis.shots)} shots, "
            line += f"{len(analysis.thumbnails)} safe thumbnail(s)"
            progress.console.print(line + "".join(f"\n    wrote {escape(str(p))}" for p in written))
    elapsed = time.perf_counter() - started
    console.print(
        f"{len(files) - len(failures)}/{len(files)} file(s), {video_seconds:.1f} s of video in {elapsed:.1f} s "
        f"({video_seconds / elapsed if elapsed else 0:.2f} video s per wall s)"
    )
    for failure in failures:
        console.print(f"[red]✗ {escape(failure)}")
    if failures:
        raise typer.Exit(1)
