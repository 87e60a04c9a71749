"""Every model Marquee serves, by name. Add a spec here and `marquee render` picks it up."""

from __future__ import annotations

from marquee.errors import UnknownModelError
from marquee.specs.audio import AUDIO_MODELS
from marquee.specs.base import ModelSpec
from marquee.specs.moderation_image import IMAGE_MODERATION_MODELS
from marquee.specs.moderation_text import TEXT_MODERATION_MODELS
from marquee.specs.ranker import RANKER_FP32, RANKER_INT8
from marquee.specs.recommend import RECOMMEND_MODELS
from marquee.specs.vad import VAD_MODELS
from marquee.specs.vision import VISION_MODELS
from marquee.specs.whisper import WHISPER_BASE_MODELS, WHISPER_MODELS

CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        RANKER_FP32,
        RANKER_INT8,
        *RECOMMEND_MODELS,
        *TEXT_MODERATION_MODELS,
        *IMAGE_MODERATION_MODELS,
        *AUDIO_MODELS,
        *VAD_MODELS,
        *WHISPER_MODELS,
        *WHISPER_BASE_MODELS,
        *VISION_MODELS,
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownModelError(f"unknown model `{name}`; known models: {', '.join(sorted(CATALOGUE))}") from None


def specs_for_family(family: str) -> list[ModelSpec]:
    specs = [spec for spec in CATALOGUE.values() if spec.family == family]
    if not specs:
        families = sorted({spec.family for spec in CATALOGUE.values()})
        raise UnknownModelError(f"unknown model family `{family}`; known families: {', '.join(families)}")
    return specs
