"""Whisper variants exported once into a long-lived cache and linked into temporary
repositories (tests, benchmarks). Kept out of pipeline.py on purpose: that file is part
of the export's content hash, and helpers here should not invalidate exported weights."""

from __future__ import annotations

from pathlib import Path

from export.whisper.pipeline import export_whisper
from marquee.specs.whisper import WhisperVariant


def link_from_cache(repository: Path, cache: Path, variant: WhisperVariant, specs=None) -> None:
    """Export `variant` into `cache` (content-hash checked: only a change re-exports) and
    symlink its models (default: the INT8 route and its encoder and decoder) into
    `repository`. Whisper base takes minutes to export; this pays that once per change."""
    from marquee import render

    render.write(list(variant.models), cache)
    export_whisper(cache, variant=variant)
    for spec in specs or (variant.route_int8, variant.encoder_int8, variant.decoder_int8):
        link = Path(repository) / spec.name
        if not link.exists():
            link.symlink_to(Path(cache) / spec.name, target_is_directory=True)
