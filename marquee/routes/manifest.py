"""Which files each Python model installs into its version folder: one manifest per route.

A route runs inside Triton with only its own version folder on `sys.path`, so every
module it imports travels with it: its `model.py`, its pure helper modules, the shared
`route_runtime.py`, and (moderation) the policy loader. One installer
(`export/route_install.py`) copies exactly these files, and the export's content hash
covers exactly these sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the `marquee` package
RUNTIME = "routes/route_runtime.py"
POLICY = "moderation/policy.py"
LIVE_POLICY = "routes/live_policy.py"  # the policy in force and its shadow, re-read while serving
SURFACES = "surfaces.py"  # the surfaces loader; the installer adds policies/surfaces.yaml with it
SURFACES_FILE = "surfaces.yaml"


@dataclass(frozen=True)
class RouteManifest:
    """`model` is installed as `model.py`; `modules` keep their file names. Paths are
    relative to the marquee package."""

    model: str
    modules: tuple[str, ...] = ()

    def module_files(self) -> dict[str, Path]:
        """Installed name -> source, for every helper module."""
        files = {Path(relative).name: PACKAGE_ROOT / relative for relative in self.modules}
        if len(files) != len(self.modules) or "model.py" in files:
            raise ValueError(f"route manifest {self.model}: module file names must be unique and not model.py")
        return files

    def model_file(self) -> Path:
        return PACKAGE_ROOT / self.model

    @property
    def uses_surfaces(self) -> bool:
        return SURFACES in self.modules

    def sources(self) -> list[Path]:
        """Every source file, for the export's content hash (the surfaces file included)."""
        extra = [PACKAGE_ROOT.parent / "policies" / SURFACES_FILE] if self.uses_surfaces else []
        return [self.model_file(), *self.module_files().values(), *extra]


RECOMMEND = RouteManifest(
    "routes/recommend/model.py",
    (
        "routes/recommend/route_logic.py",
        "routes/recommend/experiment.py",
        "routes/recommend/agreement.py",
        "routes/recommend/shadow.py",
        RUNTIME,
        SURFACES,
    ),
)
CANDIDATES_IVF = RouteManifest("routes/recommend/candidates_ivf.py", (RUNTIME,))
MODERATE_TEXT = RouteManifest(
    "routes/moderate_text/model.py",
    (
        "routes/moderate_text/cascade.py",
        "routes/moderate_text/text_tokens.py",
        POLICY,
        LIVE_POLICY,
        RUNTIME,
        SURFACES,
    ),
)
MODERATE_IMAGE = RouteManifest(
    "routes/moderate_image/model.py",
    (
        "routes/moderate_image/detections.py",
        "routes/moderate_image/ocr.py",
        "backends/dali/image_header.py",  # the DALI stand-in checks images with it too
        "routes/moderate_image/judgement.py",
        POLICY,
        LIVE_POLICY,
        RUNTIME,
        SURFACES,
    ),
)
TRANSCRIBE = RouteManifest(
    "routes/transcribe/model.py",
    (
        "routes/transcribe/decoding.py",
        "routes/transcribe/features.py",
        "routes/transcribe/media.py",
        "routes/transcribe/vad.py",
        "routes/transcribe/windows.py",
        "routes/transcribe/segments.py",
        "routes/transcribe/lockstep.py",
        RUNTIME,
        SURFACES,
    ),
)
ANALYZE_VIDEO = RouteManifest(
    "routes/analyze_video/model.py",
    (
        "routes/analyze_video/frames.py",
        "routes/analyze_video/shots.py",
        "routes/analyze_video/thumbnails.py",
        "routes/analyze_video/tags.py",
        "routes/analyze_video/faces.py",
        RUNTIME,
        SURFACES,
    ),
)

# Served model name -> manifest. Every Python model of the catalogue has one (a unit test
# checks this), so no route can be installed by hand-written copy loops.
MANIFESTS: dict[str, RouteManifest] = {
    "recommend": RECOMMEND,
    "candidates_ivf": CANDIDATES_IVF,
    "moderate_text": MODERATE_TEXT,
    "moderate_image": MODERATE_IMAGE,
    "transcribe": TRANSCRIBE,
    "transcribe_int8": TRANSCRIBE,
    "transcribe_base": TRANSCRIBE,
    "transcribe_base_int8": TRANSCRIBE,
    "analyze_video": ANALYZE_VIDEO,
}
