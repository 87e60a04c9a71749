"""Compare the served detector path with NudeNet's own `NudeDetector.detect`.

Tolerances (measured on the synthetic comparison images: scores differ by <= 0.022 and
boxes by <= 1 px, because DALI and OpenCV round the resized pixels differently):
- every reference detection has a served one with the same label, IoU >= 0.7 and a score
  within SCORE_TOLERANCE;
- a detection may be missing on either side only when its score is within
  SCORE_TOLERANCE of NudeNet's NMS threshold (0.25), where rounding can tip it over.
"""

from __future__ import annotations

SCORE_TOLERANCE = 0.03
MIN_IOU = 0.7
NMS_THRESHOLD = 0.25


def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - w * h
    return w * h / union if union > 0 else 0.0


def detection_mismatches(reference: list[dict], served: list[dict]) -> list[str]:
    """Problems found; both lists hold {"label"|"class", "score", "box": [x, y, w, h]}."""
    problems = []
    unmatched = list(served)
    for ref in sorted(reference, key=lambda d: -d["score"]):
        label = ref.get("label", ref.get("class"))
        candidates = [d for d in unmatched if d.get("label", d.get("class")) == label]
        best = max(candidates, key=lambda d: _iou(ref["box"], d["box"]), default=None)
        if best is not None and _iou(ref["box"], best["box"]) >= MIN_IOU:
            unmatched.remove(best)
            if abs(best["score"] - ref["score"]) > SCORE_TOLERANCE:
                problems.append(f"{label}: score {best['score']:.3f} vs reference {ref['score']:.3f}")
        elif ref["score"] > NMS_THRESHOLD + SCORE_TOLERANCE:
            problems.append(f"{label} {ref['score']:.3f} at {ref['box']} found by NudeNet, not served")
    for extra in unmatched:
        if extra["score"] > NMS_THRESHOLD + SCORE_TOLERANCE:
            problems.append(f"{extra.get('label')} {extra['score']:.3f} at {extra['box']} served, not in NudeNet")
    return problems
