"""Whisper's timestamp rules, greedy steps and the seek-by-last-timestamp window logic."""

from __future__ import annotations

import numpy as np
import pytest

from marquee.routes.transcribe.decoding import DecodingRules, WindowDecode, apply_rules, greedy_step
from marquee.routes.transcribe.windows import N_FRAMES, content_frames, split_window, window_features

# A toy vocabulary: text 0..9, eot 10, sot 11, no_speech 12, no_timestamps 13, timestamps 14..
RULES = DecodingRules(
    sot_sequence=(11,),
    eot=10,
    no_speech=12,
    no_timestamps=13,
    timestamp_begin=14,
    vocab_size=14 + 100,
    suppress=(11, 12),
    begin_suppress=(0, 10),
    max_initial_timestamp_index=50,
)
TS = RULES.timestamp_begin


def _logits(favourite: int, value: float = 10.0) -> np.ndarray:
    logits = np.zeros((1, RULES.vocab_size), np.float32)
    logits[0, favourite] = value
    return logits


def _allowed(sampled: list[int]) -> np.ndarray:
    # Text clearly ahead, so the "timestamps together beat text" rule stays out of the way.
    logits = np.zeros((1, RULES.vocab_size), np.float32)
    logits[0, : RULES.eot + 1] = 10.0
    masked = apply_rules(logits, [sampled], RULES)
    return np.flatnonzero(np.isfinite(masked[0]))


def test_first_token_is_a_timestamp_no_later_than_one_second():
    assert list(_allowed([])) == list(range(TS, TS + 51))


def test_after_a_lone_timestamp_comes_its_partner_or_end_of_text_not_text():
    allowed = set(_allowed([TS + 5, 3]).tolist())  # inside a segment: text, or a strictly later end
    assert {3, 10} <= allowed and TS + 5 not in allowed and TS + 6 in allowed
    allowed = set(_allowed([TS + 5, 3, TS + 9]).tolist())  # lone closing timestamp
    assert not allowed & set(range(10)) and 10 in allowed and TS + 9 in allowed and TS + 8 not in allowed


def test_after_a_timestamp_pair_comes_text_and_timestamps_never_decrease():
    allowed = set(_allowed([TS, 3, TS + 9, TS + 9]).tolist())
    assert allowed & set(range(10)) and not allowed & set(range(TS, RULES.vocab_size))
    assert RULES.no_timestamps not in allowed and 11 not in allowed and 12 not in allowed


def test_timestamp_is_forced_when_timestamps_together_beat_the_best_text_token():
    logits = np.zeros((1, RULES.vocab_size), np.float32)
    logits[0, 3] = 2.0  # best single token is text, but 100 timestamps at 0 sum to more
    masked = apply_rules(logits, [[TS, 3]], RULES)
    assert not np.isfinite(masked[0, :TS]).any()


def test_greedy_step_stops_at_end_of_text_and_counts_its_logprob():
    window = WindowDecode(tokens=[TS, 3])
    greedy_step(_logits(10), [window], RULES)
    assert window.done and window.tokens == [TS, 3] and window.sum_logprob < 0
    assert window.avg_logprob == pytest.approx(window.sum_logprob / 3)


def test_greedy_step_stops_at_the_sample_length():
    window = WindowDecode(tokens=[TS] + [3] * (RULES.sample_len - 2))
    greedy_step(_logits(4), [window], RULES)
    assert window.done and len(window.tokens) == RULES.sample_len


def test_silence_rule_needs_high_no_speech_and_low_confidence():
    assert WindowDecode(no_speech_prob=0.9, sum_logprob=-5.0).skip_as_silence(RULES)
    assert not WindowDecode(no_speech_prob=0.9, sum_logprob=-0.1).skip_as_silence(RULES)
    assert not WindowDecode(no_speech_prob=0.2, sum_logprob=-5.0).skip_as_silence(RULES)


def test_window_ending_in_a_lone_timestamp_advances_a_whole_window():
    tokens = [TS, 1, 2, TS + 100, TS + 100, 3, TS + 400]
    segments, seek = split_window(tokens, seek=6000, segment_size=3000, timestamp_begin=TS)
    assert [(s.start, s.end) for s in segments] == [(60.0, 62.0), (62.0, 68.0)]
    assert seek == 9000


def test_unfinished_last_segment_is_dropped_and_seek_goes_to_the_last_timestamp():
    tokens = [TS, 1, 2, TS + 100, TS + 150, 3, 4]  # the second segment never closes
    segments, seek = split_window(tokens, seek=0, segment_size=3000, timestamp_begin=TS)
    assert [(s.start, s.end, s.tokens) for s in segments] == [(0.0, 2.0, (TS, 1, 2, TS + 100))]
    assert seek == 200  # timestamp 100 = 2.0 s = frame 200


def test_window_without_a_timestamp_pair_is_one_segment_to_its_last_timestamp():
    segments, seek = split_window([TS, 1, 2, TS + 75], seek=0, segment_size=2500, timestamp_begin=TS)
    assert [(s.start, s.end) for s in segments] == [(0.0, 1.5)] and seek == 2500
    segments, seek = split_window([1, 2], seek=3000, segment_size=1200, timestamp_begin=TS)
    assert [(s.start, s.end) for s in segments] == [(30.0, 42.0)] and seek == 4200


def test_window_features_zero_pad_the_tail_and_content_ignores_padding_frames():
    mel = np.ones((80, 5200), np.float32)
    frames = content_frames(num_samples=4000 * 160 + 37, mel_frames=mel.shape[1])
    assert frames == 4000
    window, size = window_features(mel, seek=3000, frames=frames)
    assert window.shape == (80, N_FRAMES) and size == 1000
    assert window[:, :1000].min() == 1.0 and not window[:, 1000:].any()


def test_rules_survive_json():
    assert DecodingRules.from_json(RULES.to_json()) == RULES


def test_digitally_silent_or_far_quieter_windows_are_silent():
    from marquee.routes.transcribe.windows import silent_window

    all_silence = np.full((80, N_FRAMES), -1.5, np.float32)  # log10(1e-10) normalised
    assert silent_window(all_silence, N_FRAMES, clip_max=-1.5)
    speech_like = np.full((80, N_FRAMES), 0.2, np.float32)
    speech_like[3, 10] = 1.0
    assert not silent_window(speech_like, N_FRAMES, clip_max=1.0)
    quiet_floor = np.full((80, N_FRAMES), 1.2 - 2.0, np.float32)  # the floor of a clip whose max is 1.2
    assert silent_window(quiet_floor, N_FRAMES, clip_max=1.2)
    assert silent_window(speech_like, 0, clip_max=1.0)  # no content at all
