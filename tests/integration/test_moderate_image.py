"""The image moderation route on a real tritonserver: decisions, detections against
NudeNet's own pipeline, OCR read back, per-item errors, and a server that keeps serving."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export.moderation_image import synthetic
from export.moderation_image.compare import detection_mismatches
from marquee.specs.moderation_image import LIMITS
from marquee.specs.moderation_text import MODERATE_TEXT

pytestmark = pytest.mark.integration

CAPTION = "FREE CRYPTO GIVEAWAY"


def moderate(server, images: list[bytes], model: str = "moderate_image") -> list[tuple[str, dict]]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    result = client.infer(model, [tensor], client_timeout=120)
    return [
        (decision.decode(), json.loads(audit))
        for decision, audit in zip(result.as_numpy("decision"), result.as_numpy("audit"), strict=True)
    ]


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().upper()


def corrupt_png() -> bytes:
    """Valid signature, header and end chunk; garbage inside the compressed pixel data."""
    data = bytearray(synthetic.encode(synthetic.plain_image(200, 200, 3), ".png"))
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 60] = bytes(range(50))
    return bytes(data)


def huge_png() -> bytes:
    height, width = 6000, LIMITS.max_image_pixels // 6000 + 100
    return synthetic.encode(np.zeros((height, width), np.uint8), ".png")


def test_clean_image_is_allowed_with_a_complete_audit(image_server_alive):
    ((decision, audit),) = moderate(image_server_alive, [synthetic.encode(synthetic.plain_image(480, 640, 1))])
    assert decision == "allow"
    assert audit["detections"] == [] and audit["ocr"]["lines"] == []
    assert len(audit["scores"]) == 18 and set(audit["thresholds"]) <= set(audit["scores"])
    assert audit["image"] == {"format": "jpeg", "height": 480, "width": 640}
    assert audit["policy_version"] and len(audit["policy_sha256"]) == 64
    assert set(audit["models"]) == {"image_preprocess", "nudenet_320n", "ocr_det_ppocrv4", "ocr_rec_ppocrv4"}


def test_detections_match_nudenet_detect_in_original_coordinates(image_server_alive):
    from nudenet import NudeDetector

    reference = NudeDetector()
    images = [
        synthetic.encode(synthetic.blobs_image(h, w, seed), ".png")
        for seed, (h, w) in enumerate(synthetic.COMPARISON_SIZES)
    ]
    results = moderate(image_server_alive, images)
    served_total = 0
    for data, (decision, audit) in zip(images, results, strict=True):
        assert decision in ("allow", "review", "block"), audit
        assert detection_mismatches(reference.detect(data), audit["detections"]) == []
        served_total += len(audit["detections"])
    assert served_total > 0, "the synthetic images should make NudeNet fire at least once"


def test_boxes_scale_with_the_image(image_server_alive):
    import cv2

    small = synthetic.blobs_image(300, 300, seed=2)
    large = cv2.resize(small, (600, 600), interpolation=cv2.INTER_LINEAR)
    (_, audit_small), (_, audit_large) = moderate(
        image_server_alive, [synthetic.encode(small, ".png"), synthetic.encode(large, ".png")]
    )
    best_small = max(audit_small["detections"], key=lambda d: d["score"])
    best_large = max(audit_large["detections"], key=lambda d: d["score"])
    assert best_small["label"] == best_large["label"]
    assert np.allclose(np.array(best_large["box"]) / 2, best_small["box"], atol=6)


def test_caption_is_read_and_judged_by_the_text_route(image_server_alive):
    ((decision, audit),) = moderate(
        image_server_alive, [synthetic.encode(synthetic.caption_image(CAPTION))], model="moderate_image_judged"
    )
    lines = [normalised(line["text"]) for line in audit["ocr"]["lines"]]
    assert CAPTION in lines
    # The stand-in text route blocks "crypto"; the most severe verdict wins.
    assert audit["ocr"]["text_judged"] is True and audit["ocr"]["text_audits"]
    assert decision == "block" and any("crypto" in reason.lower() for reason in audit["reasons"])
    caption_box = np.array(next(line["box"] for line in audit["ocr"]["lines"] if normalised(line["text"]) == CAPTION))
    assert 400 < caption_box[:, 1].mean() < 520  # the white band at 420..520 in original pixels


def test_text_found_while_the_text_route_is_missing_goes_to_review(image_server_alive):
    ((decision, audit),) = moderate(image_server_alive, [synthetic.encode(synthetic.caption_image("hello world"))])
    assert decision == "review"
    assert audit["ocr"]["text_judged"] is False
    assert any(reason.startswith("ocr_text_not_judged") and "moderate_text" in reason for reason in audit["reasons"])


def test_route_with_ocr_disabled_reads_no_text_and_says_so(image_server_alive):
    ((decision, audit),) = moderate(
        image_server_alive, [synthetic.encode(synthetic.caption_image(CAPTION))], model="moderate_image_no_ocr"
    )
    assert decision == "allow"
    assert audit["ocr"]["enabled"] is False and audit["ocr"]["lines"] == []
    # It decodes through the pipeline without the OCR branch, and its audit says so.
    assert set(audit["models"]) == {"image_preprocess_detector", "nudenet_320n"}


def test_detector_only_pipeline_finds_what_the_full_route_finds(image_server_alive):
    import skimage.data

    # Real photographs with something for NudeNet to find (a face in each).
    photos = (skimage.data.astronaut(), np.stack([skimage.data.camera()] * 3, axis=-1))
    images = [synthetic.encode(photo[..., ::-1].copy()) for photo in photos]  # RGB -> BGR for OpenCV
    full = moderate(image_server_alive, images)
    detector_only = moderate(image_server_alive, images, model="moderate_image_no_ocr")
    assert any(audit["detections"] for _, audit in full), "NudeNet finds the faces"
    for (_, with_ocr), (_, without) in zip(full, detector_only, strict=True):
        assert without["detections"] == with_ocr["detections"]


def test_bad_items_get_error_while_siblings_are_decided_and_the_server_keeps_serving(image_server_alive):
    good = synthetic.encode(synthetic.plain_image(240, 320, 4))
    truncated = synthetic.encode(synthetic.plain_image(300, 300, 5))
    items = [good, corrupt_png(), truncated[: len(truncated) // 2], b"%PDF-1.7 not an image", huge_png(), good]
    results = moderate(image_server_alive, items)
    decisions = [decision for decision, _ in results]
    assert decisions == ["allow", "error", "error", "error", "error", "allow"]
    errors = [audit["error"] for _, audit in results[1:5]]
    assert errors[0].startswith("image[1]: ") and "cannot decode" in errors[0]
    assert "truncated JPEG" in errors[1]
    assert "not a JPEG or PNG" in errors[2]
    assert f"the limit (max_image_pixels) is {LIMITS.max_image_pixels}" in errors[3]
    # The preprocessing instance survived the corrupt image and still decodes.
    ((decision, audit),) = moderate(image_server_alive, [good])
    assert decision == "allow" and audit["image"]["width"] == 320


def test_preprocess_model_reports_a_corrupt_image_and_recovers(image_server_alive):
    client = grpcclient.InferenceServerClient(image_server_alive.grpc_url)

    def preprocess(data: bytes):
        tensor = grpcclient.InferInput("image", [1, len(data)], "UINT8")
        tensor.set_data_from_numpy(np.frombuffer(data, np.uint8)[None, :])
        return client.infer("image_preprocess", [tensor])

    with pytest.raises(InferenceServerException, match="cannot decode image"):
        preprocess(corrupt_png())
    result = preprocess(synthetic.encode(synthetic.plain_image(90, 160, 6), ".png"))
    assert result.as_numpy("original_size").tolist() == [[90, 160]]


def test_request_without_items_is_a_request_error_naming_the_limit(image_server_alive):
    client = grpcclient.InferenceServerClient(image_server_alive.grpc_url)
    tensor = grpcclient.InferInput("image", [0], "BYTES")
    tensor.set_data_from_numpy(np.array([], dtype=np.object_))
    with pytest.raises(InferenceServerException, match=rf"0 items; allowed 1 to {LIMITS.max_items}"):
        client.infer("moderate_image", [tensor])


def lines_image(lines: int, seed: int) -> bytes:
    """A white page holding `lines` short lines of black text, each one OCR line."""
    rng = np.random.default_rng(seed)
    image = np.full((640, 640, 3), 255, np.uint8)
    for row in range(lines):
        word = "".join(rng.choice(list("abcdefghkmnprstuvwxyz"), 6))
        cv2.putText(image, f"{word} {row:02d}", (20, 28 + row * 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return synthetic.encode(image)


def test_more_ocr_lines_than_the_text_route_takes_are_judged_in_chunks(image_server_alive):
    """One request whose images hold more OCR lines in all than one text-route request may
    carry: every image is still judged (before, the whole call failed past the limit)."""
    limit = int(MODERATE_TEXT.parameters["max_texts"])
    images = [lines_image(20, seed) for seed in range(15)]
    results = moderate(image_server_alive, images, model="moderate_image_judged")
    assert all("ocr" in audit for _, audit in results), [audit.get("error") for _, audit in results]
    judged_lines = sum(len([line for line in audit["ocr"]["lines"] if line["judged"]]) for _, audit in results)
    assert judged_lines > limit, f"only {judged_lines} lines found; the test needs more than {limit}"
    for decision, audit in results:
        assert decision == "allow", audit.get("reasons")
        assert audit["ocr"]["text_judged"] is True
        assert len(audit["ocr"]["text_audits"]) == len([line for line in audit["ocr"]["lines"] if line["judged"]])
