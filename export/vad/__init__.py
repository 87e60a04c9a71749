"""Silero VAD (from the faster-whisper package) into the model repository."""

from export.vad.pipeline import export_silero_vad

__all__ = ["export_silero_vad"]
