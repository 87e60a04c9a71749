"""Whisper export: CTranslate2 / transformers weights -> PyTorch -> ONNX encoder and cached decoder."""
