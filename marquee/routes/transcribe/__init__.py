"""The `transcribe` route: `model.py` is the Triton model; `decoding.py`, `windows.py` and
`segments.py` are its pure-numpy steps (shared with the PyTorch reference in export/whisper)."""
