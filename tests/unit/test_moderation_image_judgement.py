"""Combining the image verdict with the OCR text verdict: most severe wins, never silently allow."""

from marquee.moderation.policy import default_policy_path, load_policy
from marquee.routes.moderate_image.judgement import TextJudgement, final_decision, judge_image, judge_text

POLICY = load_policy(default_policy_path())


def test_no_text_is_allow():
    assert judge_text([], None) == ("allow", [])


def test_text_found_but_not_judged_is_review_with_the_reason():
    decision, reasons = judge_text(["buy now"], TextJudgement(unjudged_reason="moderate_text failed: not ready"))
    assert decision == "review" and "not ready" in reasons[0]


def test_text_line_the_text_route_refused_is_review():
    judgement = TextJudgement(decisions=["allow", "error"], audits=[{}, {"error": "text too long"}])
    decision, reasons = judge_text(["ok", "x" * 10], judgement)
    assert decision == "review" and "text too long" in reasons[0]


def test_most_severe_of_image_and_text_wins():
    judgement = TextJudgement(decisions=["allow", "block"], audits=[{}, {"reasons": ["spam=0.97"]}])
    text = judge_text(["hello", "free crypto"], judgement)
    image = judge_image({"FEMALE_BREAST_EXPOSED": 0.4}, POLICY)
    assert image[0] == "review"
    decision, reasons = final_decision(image, text)
    assert decision == "block" and len(reasons) == 2


def test_labels_absent_from_the_policy_never_change_the_decision():
    assert judge_image({"FACE_FEMALE": 0.99, "FEET_EXPOSED": 0.99}, POLICY) == ("allow", [])
