"""perf_analyzer request data for routes that random tensors would not exercise."""

import json

from perf.inputs import MODERATION_TEXTS_PER_REQUEST, input_args


def test_moderation_requests_carry_real_comments(tmp_path):
    args = input_args("moderate_text", tmp_path, tmp_path)
    assert args[0] == "--input-data"
    requests = json.loads(open(args[1]).read())["data"]
    assert len(requests) == 50
    for request in requests:
        texts = request["text"]["content"]
        assert request["text"]["shape"] == [MODERATION_TEXTS_PER_REQUEST] == [len(texts)]
        assert all(isinstance(t, str) and t.strip() for t in texts)
    assert len({t for r in requests for t in r["text"]["content"]}) > MODERATION_TEXTS_PER_REQUEST


def test_models_without_special_needs_get_no_extra_arguments(tmp_path):
    assert input_args("ranker_int8", tmp_path, tmp_path) == []
