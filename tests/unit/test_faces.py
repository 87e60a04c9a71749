"""MTCNN's cascade (marquee/routes/analyze_video/faces.py): its arithmetic against
PyTorch's, the whole cascade on the PyTorch networks against facenet-pytorch's own
`MTCNN.detect`, and the face term of thumbnail scoring. The served ONNX networks are
checked the same way through tritonserver in tests/integration/test_analyze_video.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from marquee.routes.analyze_video import faces
from marquee.routes.analyze_video.thumbnails import Candidate, top_thumbnails
from tests.facenet_reference import FACES_BY_HAND, assert_same_faces, photographs, reference_detector, reference_faces


@pytest.mark.parametrize("size", [(37, 53), (12, 12), (90, 41), (200, 160)])
def test_area_resize_is_pytorchs_area_interpolation_down_and_up(size):
    image = np.random.default_rng(0).integers(0, 256, (2, 80, 120, 3)).astype(np.uint8)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(0, 3, 1, 2).float(), size=size, mode="area"
    ).permute(0, 2, 3, 1)
    got = faces.area_resize(faces.summed_area(image), *size)
    assert np.abs(got - expected.numpy()).max() < 1e-3


def test_area_resize_of_a_window_is_the_resize_of_the_cropped_image():
    image = np.random.default_rng(1).integers(0, 256, (1, 60, 70, 3)).astype(np.uint8)
    window = faces.area_resize(faces.summed_area(image), 24, 24, (5, 9, 47, 33))
    alone = faces.area_resize(faces.summed_area(image[:, 5:47, 9:33]), 24, 24)
    assert np.abs(window - alone).max() < 1e-3


def test_nms_keeps_the_best_of_overlapping_boxes_and_every_separate_one():
    boxes = np.array([[0, 0, 10, 10, 0.8], [1, 1, 11, 11, 0.9], [50, 50, 60, 60, 0.7], [0, 0, 10, 4, 0.95]], np.float32)
    assert faces.nms(boxes, 0.5).tolist() == [3, 1, 2]  # box 0 overlaps box 1 by IoU 0.68
    # Over the smaller box, the thin box 3 lies inside box 0 and 73% inside box 1: both merge into it.
    assert faces.nms(boxes, 0.7, smaller=True).tolist() == [3, 2]
    assert faces.nms(np.zeros((0, 5), np.float32), 0.5).tolist() == []


def test_pyramid_starts_where_the_smallest_face_fills_12_pixels_and_stops_below_12():
    scales = faces.pyramid(360, 640, faces.Settings(min_face_px=20))
    assert scales[0] == pytest.approx(0.6)
    assert min(360, 640) * scales[-1] >= 12 > min(360, 640) * scales[-1] * 0.709
    assert np.allclose(np.diff(np.log(scales)), np.log(0.709))


@pytest.fixture(scope="module")
def torch_networks():
    """`run` on the PyTorch definitions with the package's weights (no export needed)."""
    from export.vision.mtcnn_nets import load

    nets = {faces.PROPOSAL: load("pnet"), faces.REFINE: load("rnet"), faces.OUTPUT: load("onet")}

    async def run(stage: str, pixels: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outputs = nets[stage](torch.from_numpy(pixels))
        return dict(zip(faces.OUTPUTS[stage], (o.numpy() for o in outputs), strict=True))

    return run


@pytest.mark.parametrize("name", ["astronaut@360", "pair", "coffee@360"])
def test_cascade_finds_the_faces_facenet_pytorch_finds(torch_networks, name):
    image = photographs()[name]
    boxes, probabilities = reference_faces(reference_detector(), image)
    assert len(boxes) == FACES_BY_HAND[name.split("@")[0]]
    (found,) = asyncio.run(faces.detect([image], torch_networks))
    assert_same_faces(name, found, boxes, probabilities)


def test_cascade_answers_each_image_of_a_batch_as_if_alone(torch_networks):
    images = photographs()
    batch = [images[name][40:240, 40:240] for name in ("astronaut@360", "coffee@360", "camera@360")]
    together = asyncio.run(faces.detect(batch, torch_networks))
    alone = [asyncio.run(faces.detect([image], torch_networks))[0] for image in batch]
    assert [len(f) for f in together] == [len(f) for f in alone] == [1, 0, 1]
    for joint, single in zip(together, alone, strict=True):
        assert all(np.allclose(a.box, b.box) for a, b in zip(joint, single, strict=True))


def _face(height: float, probability: float = 0.99) -> faces.Face:
    return faces.Face(np.array([10.0, 10.0, 10.0 + height, 10.0 + height]), probability, np.zeros((5, 2)))


def test_a_frame_with_a_face_outranks_an_otherwise_equal_frame_without_one():
    without = Candidate(1, 0.8, 0.8, height=360, decision="allow", faces=[])
    with_face = Candidate(2, 0.8, 0.8, height=360, decision="allow", faces=[_face(72.0)])
    unsearched = Candidate(3, 0.8, 0.8, height=360, decision="allow", faces=None)
    assert [c.frame for c in top_thumbnails([without, unsearched, with_face], 3)][0] == 2
    assert with_face.score == pytest.approx(without.score * 1.3)  # a face 20% of the frame tall: full weight
    assert unsearched.score == without.score


def test_the_face_term_grows_with_the_face_and_ignores_weak_detections():
    def term(*found) -> float:
        return Candidate(0, 0.5, 0.5, height=360, faces=list(found)).face_term

    assert term(_face(36.0)) == pytest.approx(0.5)
    assert term(_face(36.0), _face(300.0)) == 1.0  # the largest face counts, capped
    assert term(_face(200.0, probability=0.5)) == 0.0
    # A face does not rescue an unsafe frame: only allowed keyframes are thumbnails.
    blocked = Candidate(4, 1.0, 1.0, height=360, decision="block", faces=[_face(100.0)])
    assert top_thumbnails([blocked], 1) == []


def test_face_boxes_scale_from_proxy_to_source_pixels():
    face = faces.Face(np.array([10.0, 20.0, 30.0, 60.0]), 0.9, np.array([[10.0, 20.0]] * 5))
    scaled = face.scaled(3.0, 2.0)
    assert scaled.box.tolist() == [30.0, 40.0, 90.0, 120.0] and scaled.landmarks[0].tolist() == [30.0, 40.0]
