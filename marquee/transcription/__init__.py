"""Transcription helpers: subtitles (SRT/WebVTT), WER, espeak-ng speech, the CLI.

The Whisper models and the `transcribe` route live in export/whisper and
marquee/routes/transcribe; `audio_features` (the log-mel) in marquee/preprocess/audio.py.
"""
