"""Image moderation: NudeNet and PP-OCRv4 models, the DALI preprocessing pipeline and the route."""

from export.moderation_image.pipeline import export_image_moderation

__all__ = ["export_image_moderation"]
