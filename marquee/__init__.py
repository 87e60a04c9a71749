"""Marquee: a Triton model repository and its tooling for media platforms."""

__version__ = "0.1.0"
