"""Test clips with planted shot boundaries, made with ffmpeg, and their ground truth.

A clip is a list of shots joined by hard cuts or dissolves at known frames. Each shot's
frames come from one of ffmpeg's test sources (lavfi: testsrc2, smptehdbars, mandelbrot,
...) or from a still picture drawn here with a slow pan; the frames are composed in numpy
(a dissolve is a linear blend over its frames) and piped back into ffmpeg to be encoded as
H.264/MP4, VP9/WebM or MJPEG/AVI. The ground truth is written next to the clip as
`<name>.json`:

    {"fps": 25, "frames": 300, "width": 192, "height": 108, "codec": "h264",
     "transitions": [{"kind": "cut", "start": 60, "end": 60},
                     {"kind": "dissolve", "start": 110, "end": 121}, ...],
     "shots": [{"start": 0, "end": 59}, ...]}

A cut's `start` = `end` = the first frame of the new shot. A dissolve's frames
`start`..`end` (inclusive) are the blended ones. Shots list their pure frames only.

ffmpeg is a test-only system package (bootstrap.sh, `--test`); runtime code never
calls it. Run standalone: `python -m perf.video_clips OUT_DIR`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FFMPEG = "ffmpeg"

# Encoder arguments per codec; every clip is small and fast to encode.
CODECS: dict[str, tuple[str, tuple[str, ...]]] = {
    "h264": (".mp4", ("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p")),
    "vp9": (".webm", ("-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32", "-deadline", "realtime", "-cpu-used", "8")),
    "mjpeg": (".avi", ("-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p")),
}

# ffmpeg's moving and static test sources (lavfi), each visually distinct. `gradients`
# picks random colours on every run (its seed option did not make it repeat), so clips are
# not bit-identical across runs; their planted transitions are.
LAVFI_SOURCES = (
    "testsrc2",
    "smptehdbars",
    "mandelbrot",
    "rgbtestsrc",
    "testsrc",
    "gradients=speed=0.02",
    "yuvtestsrc",
    "pal100bars",
)


@dataclass(frozen=True)
class Shot:
    """`source`: a lavfi source name (with options after `=`), `still:<seed>` for a
    generated still picture that pans slowly, or `caption:<text>` for a title card (black
    letters on a white band, which OCR reads)."""

    source: str
    frames: int


@dataclass(frozen=True)
class Join:
    """How one shot hands over to the next: a hard cut, or a dissolve over `frames`."""

    kind: str  # "cut" | "dissolve"
    frames: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("cut", "dissolve"):
            raise ValueError(f"Join.kind={self.kind!r}; allowed: cut, dissolve")
        if (self.kind == "dissolve") != (self.frames > 0):
            raise ValueError(f"Join: a dissolve needs frames > 0 and a cut none, got {self.kind} over {self.frames}")


@dataclass(frozen=True)
class ClipPlan:
    name: str
    shots: tuple[Shot, ...]
    joins: tuple[Join, ...]
    fps: int = 25
    width: int = 192
    height: int = 108

    def __post_init__(self) -> None:
        if len(self.joins) != len(self.shots) - 1:
            raise ValueError(f"ClipPlan {self.name}: {len(self.shots)} shots need {len(self.shots) - 1} joins")
        for index, join in enumerate(self.joins):
            shortest = min(self.shots[index].frames, self.shots[index + 1].frames)
            if join.frames * 2 >= shortest:
                raise ValueError(f"ClipPlan {self.name}: dissolve {index} ({join.frames} frames) is too long")


@dataclass
class GroundTruth:
    fps: float
    frames: int
    width: int
    height: int
    codec: str
    transitions: list[dict] = field(default_factory=list)
    shots: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> GroundTruth:
        return cls(**json.loads(Path(path).read_text()))


def ground_truth(plan: ClipPlan, codec: str) -> GroundTruth:
    """Where each transition lands once overlapping dissolve frames are merged."""
    truth = GroundTruth(plan.fps, 0, plan.width, plan.height, codec)
    position, shot_start = 0, 0
    for index, shot in enumerate(plan.shots):
        position += shot.frames
        if index == len(plan.joins):
            truth.shots.append({"start": shot_start, "end": position - 1})
            break
        join = plan.joins[index]
        start = position - join.frames  # the first blended frame (the first new frame for a cut)
        truth.shots.append({"start": shot_start, "end": start - 1})
        end = start + join.frames - 1 if join.frames else start
        truth.transitions.append({"kind": join.kind, "start": start, "end": end})
        position -= join.frames
        shot_start = start + join.frames
    truth.frames = position
    return truth


def _lavfi_frames(source: str, frames: int, plan: ClipPlan) -> np.ndarray:
    name, _, options = source.partition("=")
    spec = f"{name}=size={plan.width}x{plan.height}:rate={plan.fps}" + (f":{options}" if options else "")
    command = [FFMPEG, "-v", "error", "-f", "lavfi", "-i", spec, "-frames:v", str(frames)]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(command, check=True, capture_output=True).stdout
    video = np.frombuffer(raw, np.uint8).reshape(-1, plan.height, plan.width, 3)
    if len(video) != frames:
        raise RuntimeError(f"ffmpeg gave {len(video)} frames of {source}, asked for {frames}")
    return video


def still_picture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random colour field with a few sharp-edged shapes (RGB)."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    picture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(5):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(height // 10, height // 3))
        cv2.circle(picture, centre, radius, tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return picture


def _still_frames(seed: int, frames: int, plan: ClipPlan) -> np.ndarray:
    """A still picture, wider than the frame, panned one pixel every other frame."""
    picture = still_picture(plan.height, plan.width + frames // 2 + 1, seed)
    return np.stack([picture[:, i // 2 : i // 2 + plan.width] for i in range(frames)])


def caption_card(text: str, height: int, width: int) -> np.ndarray:
    """A dark green card with `text` in black on a white band across its lower half (RGB)."""
    import cv2

    card = np.full((height, width, 3), (60, 120, 40), np.uint8)
    top = int(height * 0.55)
    cv2.rectangle(card, (0, top), (width, top + height // 4), (255, 255, 255), -1)
    scale = width / 420
    baseline = top + int(height / 4 * 0.72)
    cv2.putText(card, text, (width // 20, baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    return card


def shot_frames(shot: Shot, plan: ClipPlan) -> np.ndarray:
    if shot.source.startswith("caption:"):
        card = caption_card(shot.source.split(":", 1)[1], plan.height, plan.width)
        return np.repeat(card[None], shot.frames, axis=0)
    if shot.source.startswith("still:"):
        return _still_frames(int(shot.source.split(":", 1)[1]), shot.frames, plan)
    return _lavfi_frames(shot.source, shot.frames, plan)


def compose(plan: ClipPlan) -> np.ndarray:
    """Every frame of the clip, RGB uint8 [frames, height, width, 3]."""
    video = shot_frames(plan.shots[0], plan).astype(np.float32)
    for join, shot in zip(plan.joins, plan.shots[1:], strict=True):
        incoming = shot_frames(shot, plan).astype(np.float32)
        if join.frames:
            weights = (np.arange(1, join.frames + 1, dtype=np.float32) / (join.frames + 1))[:, None, None, None]
            blended = video[-join.frames :] * (1 - weights) + incoming[: join.frames] * weights
            video = np.concatenate([video[: -join.frames], blended, incoming[join.frames :]])
        else:
            video = np.concatenate([video, incoming])
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def encode(frames: np.ndarray, fps: float, codec: str, path: Path) -> Path:
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r}; allowed: {', '.join(CODECS)}")
    height, width = frames.shape[1:3]
    command = [FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    command += ["-r", str(fps), "-i", "-", *CODECS[codec][1], str(path)]
    subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(), check=True, capture_output=True)
    return path


def make_clip(plan: ClipPlan, codec: str, folder: Path) -> tuple[Path, GroundTruth]:
    """Encode `plan` with `codec` into `folder`; writes `<name>.json` (ground truth) too."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = compose(plan)
    truth = ground_truth(plan, codec)
    if truth.frames != len(frames):
        raise RuntimeError(f"{plan.name}: composed {len(frames)} frames, the ground truth counts {truth.frames}")
    stem = f"{plan.name}_{codec}"
    path = encode(frames, plan.fps, codec, folder / f"{stem}{CODECS[codec][0]}")
    (folder / f"{stem}.json").write_text(json.dumps(asdict(truth), indent=1) + "\n")
    return path, truth


def standard_plans(seed: int = 0, clips: int = 2, width: int = 192, height: int = 108) -> list[ClipPlan]:
    """Clips of 8 shots each (about 12 s at 25 fps): cuts and 10-20 frame dissolves
    alternate at random; shot lengths vary from 1.4 to 2.4 s."""
    rng = np.random.default_rng(seed)
    plans = []
    for number in range(clips):
        sources = [*LAVFI_SOURCES, *(f"still:{seed * 100 + number * 10 + i}" for i in range(4))]
        chosen = rng.permutation(len(sources))[:8]
        shots = tuple(Shot(sources[i], int(rng.integers(35, 60))) for i in chosen)
        joins = tuple(
            Join("dissolve", int(rng.integers(10, 17))) if rng.random() < 0.45 else Join("cut")
            for _ in range(len(shots) - 1)
        )
        plans.append(ClipPlan(f"clip{seed}_{number}", shots, joins, width=width, height=height))
    return plans


def make_test_set(folder: Path, codecs: tuple[str, ...] = tuple(CODECS), seed: int = 0, clips: int = 2) -> list:
    """(path, ground truth) for every standard plan in every codec."""
    return [make_clip(plan, codec, folder) for plan in standard_plans(seed, clips) for codec in codecs]


if __name__ == "__main__":
    for clip_path, clip_truth in make_test_set(Path(sys.argv[1] if len(sys.argv) > 1 else "clips")):
        kinds = [t["kind"] for t in clip_truth.transitions]
        cuts, dissolves = kinds.count("cut"), kinds.count("dissolve")
        print(f"{clip_path}: {clip_truth.frames} frames, {cuts} cuts, {dissolves} dissolves")
