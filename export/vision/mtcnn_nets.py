"""MTCNN's three networks (Zhang et al. 2016), written here; their weights ship in the
`facenet-pytorch` 2.6.0 wheel as `facenet_pytorch/data/{pnet,rnet,onet}.pt` (state dicts
named `conv1`, `prelu1`, ..., `dense5_1`). The package itself is never imported: it
imports torchvision, which the CPU torch here does not have, and the runtime needs
neither torch nor facenet-pytorch.

- P-Net (proposals): fully convolutional, any image size; per 12x12 cell (stride 2) a
  face probability and four box offsets.
- R-Net (refinement): 24x24 crops -> face probability and box offsets.
- O-Net (output): 48x48 crops -> face probability, box offsets and five landmarks.

`Served*` wrap each network with what the cascade would otherwise do around it: the
graph takes float RGB pixels in 0..255, NHWC (the cascade resizes crops by area
averaging, so pixels are no longer integers), normalises them ((x - 127.5) / 128, as the
weights were trained), and returns the face probability (softmax's second class) rather
than both classes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from export.vision.footage import package_file

PACKAGE = "facenet-pytorch"
NETS = ("pnet", "rnet", "onet")
PIXEL_CENTRE, PIXEL_SCALE = 127.5, 0.0078125


def weights_file(net: str) -> Path:
    return package_file(f"facenet_pytorch/data/{net}.pt", PACKAGE)


def _conv(channels_in: int, channels_out: int, kernel: int) -> tuple[nn.Conv2d, nn.PReLU]:
    return nn.Conv2d(channels_in, channels_out, kernel), nn.PReLU(channels_out)


def _flatten_like_caffe(x: torch.Tensor) -> torch.Tensor:
    """The dense layers were converted from Caffe, which flattens [C, H, W] maps in W, H, C
    order; the weights expect that order."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 10, 3)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _conv(10, 16, 3)
        self.conv3, self.prelu3 = _conv(16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 28, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _conv(28, 48, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = _conv(48, 64, 2)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_like_caffe(x)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 32, 3)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = _conv(32, 64, 3)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = _conv(64, 64, 3)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = _conv(64, 128, 2)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # landmarks: five x, then five y

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_flatten_like_caffe(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels.permute(0, 3, 1, 2) - PIXEL_CENTRE) * PIXEL_SCALE


class ServedPNet(nn.Module):
    """[batch, height, width, 3] pixels -> offsets [batch, rows, cols, 4], probability [batch, rows, cols]."""

    def __init__(self, net: PNet):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, classes = self.net(_normalised(pixels))
        return offsets.permute(0, 2, 3, 1), classes[:, 1]


class ServedRNet(nn.Module):
    """[batch, 24, 24, 3] pixels -> offsets [batch, 4], probability [batch, 1]."""

    def __init__(self, net: RNet):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, classes = self.net(_normalised(pixels))
        return offsets, classes[:, 1:]


class ServedONet(nn.Module):
    """[batch, 48, 48, 3] pixels -> offsets [batch, 4], landmarks [batch, 10], probability [batch, 1]."""

    def __init__(self, net: ONet):
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        offsets, landmarks, classes = self.net(_normalised(pixels))
        return offsets, landmarks, classes[:, 1:]


_DEFINITIONS = {"pnet": (PNet, ServedPNet), "rnet": (RNet, ServedRNet), "onet": (ONet, ServedONet)}


def load(net: str) -> nn.Module:
    """The served form of one network, with the package's weights (every tensor must match)."""
    if net not in _DEFINITIONS:
        raise ValueError(f"net={net!r}; allowed: {', '.join(NETS)}")
    definition, served = _DEFINITIONS[net]
    model = definition()
    model.load_state_dict(torch.load(weights_file(net), map_location="cpu", weights_only=True), strict=True)
    return served(model).eval()
