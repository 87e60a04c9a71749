"""The DALI preprocessing pipeline against NudeNet's own OpenCV preprocessing, its GPU
serialization, and the image export's content-hash cache."""

from pathlib import Path

import numpy as np
import pytest

from export.moderation_image import synthetic
from marquee import render
from marquee.preprocess.image import DETECTOR_SIZE, OCR_SIZE, image_preprocess_pipeline, serialize
from marquee.specs.moderation_image import IMAGE_MODERATION_MODELS, IMAGE_PREPROCESS

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"


def _run(pipe, images: list[bytes]) -> list[list[np.ndarray]]:
    outputs = pipe.run(image=[np.frombuffer(data, np.uint8) for data in images])
    return [[np.array(output[i]) for output in outputs] for i in range(len(images))]


@pytest.fixture(scope="module")
def cpu_pipeline():
    pipe = image_preprocess_pipeline("cpu", batch_size=4)
    pipe.build()
    return pipe


@pytest.mark.parametrize("height,width", [(480, 640), (333, 517), (300, 300)])
def test_cpu_pipeline_matches_nudenet_letterbox_within_spec_tolerance(cpu_pipeline, height, width):
    from nudenet.nudenet import _read_image

    data = synthetic.encode(synthetic.blobs_image(height, width, seed=height), ".png")
    detector_input, _, _, original_size = _run(cpu_pipeline, [data])[0]
    reference = _read_image(data, DETECTOR_SIZE)[0][0]
    difference = np.abs(detector_input - reference)
    assert detector_input.shape == (3, DETECTOR_SIZE, DETECTOR_SIZE)
    assert difference.max() <= IMAGE_PREPROCESS.tolerance.atol
    assert difference.mean() <= IMAGE_PREPROCESS.tolerance.mean_atol
    assert original_size.tolist() == [height, width]


def test_ocr_outputs_are_letterboxed_bgr_pixels_and_their_normalised_copy(cpu_pipeline):
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0] = 200  # blue in BGR
    _, ocr_input, ocr_pixels, _ = _run(cpu_pipeline, [synthetic.encode(image, ".png")])[0]
    assert ocr_pixels.shape == (OCR_SIZE, OCR_SIZE, 3) and ocr_input.shape == (3, OCR_SIZE, OCR_SIZE)
    assert tuple(ocr_pixels[10, 10]) == (200, 0, 0)
    assert ocr_pixels[OCR_SIZE // 2 + 10 :].max() == 0  # padding below a 2:1 image
    assert np.allclose(ocr_input[:, 10, 10], np.array([200, 0, 0]) / 127.5 - 1.0, atol=1e-5)
    assert np.allclose(ocr_input[:, -1, -1], -1.0)  # padding is black


def test_a_batch_mixes_sizes_and_formats(cpu_pipeline):
    images = [
        synthetic.encode(synthetic.plain_image(90, 160, 0), ".jpg"),
        synthetic.encode(synthetic.plain_image(400, 120, 1), ".png"),
    ]
    sizes = [sample[3].tolist() for sample in _run(cpu_pipeline, images)]
    assert sizes == [[90, 160], [400, 120]]


def test_gpu_serialization_uses_the_mixed_decoder_and_cpu_one_does_not():
    # The operator's `device` argument as protobuf stores it: a 5-byte string "mixed".
    # (A bare b"mixed" would also match the source line DALI records with each operator.)
    device_mixed = b"*\x05mixed"
    assert device_mixed in serialize("gpu")
    assert device_mixed not in serialize("cpu")


def test_pipeline_refuses_an_unknown_device():
    with pytest.raises(ValueError, match="device='tpu'; allowed: 'cpu', 'gpu'"):
        image_preprocess_pipeline("tpu")


@pytest.mark.gpu
def test_gpu_serialization_matches_cpu_on_a_gpu(cpu_pipeline):
    from nvidia.dali.pipeline import Pipeline

    gpu = Pipeline.deserialize(serialized_pipeline=serialize("gpu"), device_id=0, batch_size=4, num_threads=2)
    gpu.build()
    data = synthetic.encode(synthetic.blobs_image(480, 640, seed=3), ".png")
    outputs = gpu.run(image=[np.frombuffer(data, np.uint8)])
    detector_input = np.array(outputs[0].as_cpu()[0])
    expected = _run(cpu_pipeline, [data])[0][0]
    assert np.abs(detector_input - expected).max() <= IMAGE_PREPROCESS.tolerance.atol


def test_committed_configs_match_the_specs():
    assert render.stale(list(IMAGE_MODERATION_MODELS), REPOSITORY) == []


def test_export_is_skipped_when_nothing_changed(image_moderation_repository):
    from export.moderation_image import export_image_moderation

    assert export_image_moderation(image_moderation_repository) is False
    version_dir = image_moderation_repository / IMAGE_PREPROCESS.name / "1"
    assert (version_dir / "model.dali").is_file() and (version_dir / "model.cpu.dali").is_file()
