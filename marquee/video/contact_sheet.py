"""A contact sheet: every shot's keyframe in a grid, with its timecode and tags.

Tags are what the route says about the keyframe: how the shot began (cut, dissolve),
its top scene tag (EfficientNet-Lite0's ImageNet class), its moderation decision,
burned-in text, a near-duplicate of an earlier shot, and whether it is one of the top
thumbnails (rank). Drawn with OpenCV (no font files needed), written as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TILE_WIDTH, TILE_HEIGHT = 240, 135
CAPTION_HEIGHT = 56
COLUMNS = 5
MARGIN = 8
HEADER_HEIGHT = 30
BACKGROUND = (24, 24, 24)
DECISION_COLOURS = {"allow": (90, 200, 90), "review": (60, 180, 250), "block": (70, 70, 230)}  # BGR


def shot_tags(shot, thumbnail_rank: dict[int, int]) -> list[str]:
    keyframe = shot.keyframe
    tags = [shot.transition_in]
    if keyframe is not None:
        if keyframe.tags:
            tags.append(keyframe.tags[0][0])
        tags.append(keyframe.moderation or "unjudged")
        if keyframe.text:
            tags.append("text: " + " ".join(keyframe.text)[:24])
    if shot.near_duplicate_of is not None:
        tags.append(f"dup of #{shot.near_duplicate_of}")
    if shot.index in thumbnail_rank:
        tags.append(f"thumb #{thumbnail_rank[shot.index]}")
    return tags


def render(analysis, title: str) -> np.ndarray:
    """The sheet as a BGR image."""
    import cv2

    rows = max(1, -(-len(analysis.shots) // COLUMNS))
    width = MARGIN + COLUMNS * (TILE_WIDTH + MARGIN)
    height = HEADER_HEIGHT + MARGIN + rows * (TILE_HEIGHT + CAPTION_HEIGHT + MARGIN)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(sheet, title[:90], (MARGIN, 21), font, 0.55, (235, 235, 235), 1, cv2.LINE_AA)
    rank = {t.shot: i + 1 for i, t in enumerate(analysis.thumbnails)}
    for position, shot in enumerate(analysis.shots):
        x = MARGIN + (position % COLUMNS) * (TILE_WIDTH + MARGIN)
        y = HEADER_HEIGHT + MARGIN + (position // COLUMNS) * (TILE_HEIGHT + CAPTION_HEIGHT + MARGIN)
        if shot.keyframe is not None and shot.keyframe.jpeg:
            tile = cv2.imdecode(np.frombuffer(shot.keyframe.jpeg, np.uint8), cv2.IMREAD_COLOR)
            sheet[y : y + TILE_HEIGHT, x : x + TILE_WIDTH] = _fit(tile)
        decision = shot.keyframe.moderation if shot.keyframe else None
        colour = DECISION_COLOURS.get(decision or "", (150, 150, 150))
        cv2.rectangle(sheet, (x - 1, y - 1), (x + TILE_WIDTH, y + TILE_HEIGHT), colour, 2 if shot.index in rank else 1)
        line1 = f"#{shot.index}  {shot.start_timecode}  {shot.end_s - shot.start_s:.1f}s"
        cv2.putText(sheet, line1, (x, y + TILE_HEIGHT + 17), font, 0.45, (235, 235, 235), 1, cv2.LINE_AA)
        line2 = ", ".join(shot_tags(shot, rank))
        cv2.putText(sheet, line2[:40], (x, y + TILE_HEIGHT + 34), font, 0.38, colour, 1, cv2.LINE_AA)
        if len(line2) > 40:
            cv2.putText(sheet, line2[40:80], (x, y + TILE_HEIGHT + 48), font, 0.38, colour, 1, cv2.LINE_AA)
    return sheet


def _fit(tile: np.ndarray) -> np.ndarray:
    """Letterbox a keyframe into the tile."""
    import cv2

    height, width = tile.shape[:2]
    scale = min(TILE_WIDTH / width, TILE_HEIGHT / height)
    resized = cv2.resize(
        tile, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    canvas = np.zeros((TILE_HEIGHT, TILE_WIDTH, 3), np.uint8)
    top, left = (TILE_HEIGHT - resized.shape[0]) // 2, (TILE_WIDTH - resized.shape[1]) // 2
    canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def write(analysis, path: Path, title: str) -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), render(analysis, title)):
        raise OSError(f"could not write the contact sheet {path}")
    return path
