"""PyTorch -> ONNX with the input/output names and dynamic axes taken from the model spec."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from marquee.specs.base import ModelSpec

log = logging.getLogger(__name__)
OPSET = 18


def export_to_onnx(
    model: torch.nn.Module, example_inputs: dict[str, torch.Tensor], spec: ModelSpec, path: Path
) -> Path:
    """Export with torch.export (the default exporter since torch 2.9).

    Example inputs must be keyed and ordered like `spec.inputs`, with a batch of at
    least 2 so torch.export does not specialise the batch axis to 1.
    """
    expected = [t.name for t in spec.inputs]
    if list(example_inputs) != expected:
        raise ValueError(f"example_inputs keys {list(example_inputs)} must match spec inputs {expected} in order")
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch configures its own loggers on import; silence the exporter's note that
    # torchvision (which Marquee does not use) is absent.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about renamed axes and deprecations
        torch.onnx.export(
            model,
            tuple(example_inputs.values()),
            str(path),
            input_names=expected,
            output_names=[t.name for t in spec.outputs],
            dynamic_axes=spec.onnx_dynamic_axes(),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    log.info("exported %s to %s", spec.name, path)
    return path
