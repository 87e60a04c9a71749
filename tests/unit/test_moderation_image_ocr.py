"""OCR helpers: DB boxes from a probability map, line crops, CTC greedy decoding."""

import numpy as np

from marquee.routes.moderate_image.ocr import (
    LINE_HEIGHT,
    OcrSettings,
    crop_line,
    ctc_greedy,
    load_charset,
    recognition_batch,
    text_boxes,
)


def test_text_boxes_finds_each_region_and_grows_it_past_the_shrunken_kernel():
    probability = np.zeros((200, 300), np.float32)
    probability[40:60, 20:220] = 0.9  # a line
    probability[120:150, 50:100] = 0.8  # a word
    probability[170:172, 10:290] = 0.9  # 2 px tall: too thin to be text
    boxes = text_boxes(probability)
    assert len(boxes) == 2
    first = boxes[0].points
    assert first[0, 0] < 20 and first[1, 0] > 220 and first[0, 1] < 40 and first[2, 1] > 60
    assert all(b.score > 0.75 for b in boxes)


def test_text_boxes_drops_faint_regions_below_the_box_threshold():
    probability = np.zeros((100, 100), np.float32)
    probability[30:60, 20:80] = 0.4  # above the pixel threshold, below the box threshold
    assert text_boxes(probability, OcrSettings(pixel_threshold=0.3, box_threshold=0.5)) == []


def test_crop_line_straightens_the_box_content():
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[30:50, 40:160] = 255
    boxes = text_boxes(np.where(pixels[..., 0] > 0, 0.9, 0.0).astype(np.float32), OcrSettings(unclip_ratio=0.0))
    crop = crop_line(pixels, boxes[0])
    assert crop.shape[1] > crop.shape[0] and crop.mean() > 200


def test_recognition_batch_is_height_48_in_minus_one_to_one_padded_to_the_widest():
    crops = [np.full((20, 100, 3), 255, np.uint8), np.zeros((24, 48, 3), np.uint8)]
    batch = recognition_batch(crops)
    assert batch.shape[:3] == (2, 3, LINE_HEIGHT) and batch.shape[3] % 8 == 0
    assert batch[0, :, :, :200].min() > 0.99  # white
    assert batch[1, :, :, :48].max() < -0.99 and batch[1, :, :, 100:].max() == 0.0  # black, then padding


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    charset = ["<blank>", "a", "b", " "]
    steps = [1, 1, 0, 1, 2, 2, 0, 3, 0]  # a a _ a b b _ ' ' _ -> "aab "
    probabilities = np.full((1, len(steps), 4), 0.02, np.float32)
    probabilities[0, np.arange(len(steps)), steps] = 0.94
    ((text, confidence),) = ctc_greedy(probabilities, charset)
    assert text == "aab " and abs(confidence - 0.94) < 1e-6


def test_ctc_greedy_gives_empty_line_zero_confidence():
    probabilities = np.zeros((1, 5, 3), np.float32)
    probabilities[0, :, 0] = 1.0
    assert ctc_greedy(probabilities, ["<blank>", "x", " "]) == [("", 0.0)]


def test_load_charset_puts_blank_first_and_space_last(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("a\nb\n'\n", encoding="utf-8")
    assert load_charset(str(keys)) == ["<blank>", "a", "b", "'", " "]
