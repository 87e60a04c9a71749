"""The vision models' PyTorch side: EfficientNet-Lite0 as defined here takes the shipped
weights, and the TransNetV2 wrapper gives the package's probabilities."""

from __future__ import annotations

import torch

from export.vision import efficientnet_lite


def test_every_shipped_weight_fits_the_definition_and_outputs_are_well_formed():
    model = efficientnet_lite.load()  # strict: no missing or unexpected tensor
    pixels = torch.randint(0, 255, (2, 224, 224, 3), dtype=torch.uint8)
    with torch.no_grad():
        probabilities, embedding = model(pixels)
    assert probabilities.shape == (2, 1000) and torch.allclose(probabilities.sum(1), torch.ones(2), atol=1e-5)
    assert embedding.shape == (2, 1280) and torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)


def test_same_padding_puts_the_extra_pixel_at_the_bottom_right_like_tensorflow():
    conv = efficientnet_lite.SameConv2d(1, 1, 3, 2, bias=False)
    conv.weight.data.zero_()
    conv.weight.data[0, 0, 2, 2] = 1.0  # reads the bottom-right tap of each window
    image = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    out = conv(image)
    # TF SAME for 4 -> 2 with k3 s2 pads 0 before and 1 after: windows start at rows/cols 0 and 2.
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[10.0, 0.0], [0.0, 0.0]]


def test_transnetv2_wrapper_gives_the_packages_predict_raw_probabilities():
    from export.vision.transnet import reference_model

    model = reference_model()
    frames = torch.randint(0, 255, (1, 100, 27, 48, 3), dtype=torch.uint8)
    with torch.no_grad():
        single, many = model(frames)
        expected_single, expected_many = model.model.predict_raw(frames)
    assert torch.equal(single, expected_single[..., 0]) and torch.equal(many, expected_many[..., 0])
