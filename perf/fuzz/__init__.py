"""Spec-driven fuzzing of every route and model (hypothesis)."""
