"""Audio preprocessing: the `audio_features` DALI pipeline (Whisper's log-mel)."""

from export.audio.pipeline import export_audio_features

__all__ = ["export_audio_features"]
