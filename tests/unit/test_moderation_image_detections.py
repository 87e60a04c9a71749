"""Decoding NudeNet's YOLOv8 output: thresholds, NMS, mapping back to original pixels."""

import numpy as np

from marquee.routes.moderate_image.detections import decode, label_scores, non_max_suppression

LABELS = ["A", "B", "C"]


def _output(rows: list[tuple[float, float, float, float, int, float]], anchors: int = 10) -> np.ndarray:
    """[4 + labels, anchors] with the given (cx, cy, w, h, label, score) rows, zeros elsewhere."""
    output = np.zeros((4 + len(LABELS), anchors), np.float32)
    for i, (cx, cy, w, h, label, score) in enumerate(rows):
        output[:4, i] = (cx, cy, w, h)
        output[4 + label, i] = score
    return output


def test_decode_maps_boxes_back_by_longer_side_over_input_size():
    # A 640 x 1280 (h x w) image letterboxed to 320: scale 4, no offset (padding is bottom/right).
    (detection,) = decode(_output([(100, 50, 40, 20, 1, 0.9)]), (640, 1280), 320, LABELS)
    assert detection.label == "B"
    assert np.allclose(detection.box, (4 * 80, 4 * 40, 4 * 40, 4 * 20))


def test_decode_clips_boxes_to_the_original_image():
    # The box pokes into the letterbox padding below a 160 x 320 image (model rows 80..160).
    (detection,) = decode(_output([(100, 75, 40, 20, 0, 0.9)]), (160, 320), 320, LABELS)
    x, y, w, h = detection.box
    assert y + h <= 160 + 1e-6


def test_decode_drops_candidates_below_the_nms_score():
    assert decode(_output([(100, 50, 40, 20, 0, 0.22)]), (320, 320), 320, LABELS) == []


def test_decode_suppresses_overlapping_boxes_across_labels_keeping_the_best():
    rows = [(100, 100, 50, 50, 0, 0.6), (102, 101, 50, 50, 2, 0.8), (250, 250, 30, 30, 1, 0.5)]
    detections = decode(_output(rows), (320, 320), 320, LABELS)
    assert [(d.label, round(d.score, 2)) for d in detections] == [("C", 0.8), ("B", 0.5)]


def test_non_max_suppression_keeps_boxes_at_or_below_the_iou_limit():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 10, 10.5]], np.float32)  # IoU 1/3 and ~0.95
    kept = non_max_suppression(boxes, np.array([0.9, 0.8, 0.7]), min_score=0.25, max_iou=0.45)
    assert kept == [0, 1]


def test_label_scores_reports_every_label_with_its_best_score():
    rows = [(50, 50, 20, 20, 0, 0.4), (200, 200, 20, 20, 0, 0.7)]
    scores = label_scores(decode(_output(rows), (320, 320), 320, LABELS), LABELS)
    assert scores == {"A": scores["A"], "B": 0.0, "C": 0.0} and abs(scores["A"] - 0.7) < 1e-6
