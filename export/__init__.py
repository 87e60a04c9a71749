"""Checkpoint -> ONNX (FP32, INT8) -> model_repository/<model>/<version>/, validated against the framework."""
