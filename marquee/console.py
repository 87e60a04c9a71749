"""Shared rich console and logging setup (configured only by the CLI)."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console()

# Libraries that narrate every graph pass at INFO.
_NOISY = ("onnxscript", "onnx_ir", "torch.onnx", "torch.onnx._internal.exporter._registration", "onnxruntime", "faiss")


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
