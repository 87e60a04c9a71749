"""Data preprocessing pipelines (NVIDIA DALI) that models are served behind."""
