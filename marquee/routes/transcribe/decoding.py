"""Greedy decoding with Whisper's timestamp rules, on logits from any runtime (numpy only).

The rules follow openai-whisper's logit filters, applied in its order:
1. suppress blank: at the first sampled position, no space and no end-of-text;
2. suppress tokens: the checkpoint's list of non-speech and special tokens, always;
3. timestamps: no <|notimestamps|>; timestamps come in pairs (after one lone timestamp
   the next token must be a timestamp or end-of-text, after a pair it must be text);
   they never decrease, and a segment has nonzero length; the first token is a
   timestamp no later than `max_initial_timestamp_index` (1.0 s); and when the summed
   probability of all timestamps beats the best text token, a timestamp is forced.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

NEG_INF = -np.inf
TIME_PRECISION = 0.02  # seconds per timestamp token step (the encoder's 1500 positions / 30 s)


@dataclass(frozen=True)
class DecodingRules:
    sot_sequence: tuple[int, ...]  # (sot,) for English-only models
    eot: int
    no_speech: int
    no_timestamps: int
    timestamp_begin: int
    vocab_size: int
    suppress: tuple[int, ...]
    begin_suppress: tuple[int, ...]
    max_initial_timestamp_index: int = 50  # 1.0 s / TIME_PRECISION
    sample_len: int = 224  # most tokens sampled per window (half the text context)
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    # Multilingual checkpoints only (empty for English-only ones): the language tokens in
    # vocabulary order with their codes ("en", "es", ...), and the task tokens. The prompt
    # is then <|startoftranscript|><|language|><|task|> instead of `sot_sequence`.
    language_tokens: tuple[int, ...] = ()
    language_codes: tuple[str, ...] = ()
    transcribe: int = -1
    translate: int = -1

    @property
    def multilingual(self) -> bool:
        return bool(self.language_tokens)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DecodingRules:
        values = json.loads(text)
        for name in ("sot_sequence", "suppress", "begin_suppress", "language_tokens", "language_codes"):
            values.setdefault(name, [])
            values[name] = tuple(values[name])
        return cls(**values)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def apply_rules(logits: np.ndarray, sampled: list[list[int]], rules: DecodingRules) -> np.ndarray:
    """Mask `logits` [B, V] (float32, in place) for the next token of each sequence.

    `sampled[k]` holds the tokens sampled so far for row k (without the prompt); all rows
    are at the same step because clips are decoded in lockstep.
    """
    first_step = all(len(tokens) == 0 for tokens in sampled)
    if first_step and rules.begin_suppress:
        logits[:, list(rules.begin_suppress)] = NEG_INF
    if rules.suppress:
        logits[:, list(rules.suppress)] = NEG_INF
    logits[:, rules.no_timestamps] = NEG_INF
    begin = rules.timestamp_begin
    for k, tokens in enumerate(sampled):
        last_was_timestamp = len(tokens) >= 1 and tokens[-1] >= begin
        penultimate_was_timestamp = len(tokens) < 2 or tokens[-2] >= begin
        if last_was_timestamp:
            if penultimate_was_timestamp:  # a pair just closed: text (or end) next
                logits[k, begin:] = NEG_INF
            else:  # a lone timestamp: its partner (or end-of-text), not text
                logits[k, : rules.eot] = NEG_INF
        timestamps = [t for t in tokens if t >= begin]
        if timestamps:
            # Never decrease; after a closed pair, a new segment starts strictly later so
            # that every segment has nonzero length.
            last = timestamps[-1] if last_was_timestamp and not penultimate_was_timestamp else timestamps[-1] + 1
            logits[k, begin:last] = NEG_INF
    if first_step:
        logits[:, :begin] = NEG_INF
        logits[:, begin + rules.max_initial_timestamp_index + 1 :] = NEG_INF
    logprobs = log_softmax(logits)
    # Where the timestamps' summed probability beats the best text token, only a timestamp
    # may follow. Every step runs this: np.logaddexp.reduce took 1.1 ms for 16 rows of 1,501
    # timestamps, _logsumexp 0.05 ms.
    forced = _logsumexp(logprobs[:, begin:]) > logprobs[:, :begin].max(axis=-1)
    logits[forced, :begin] = NEG_INF
    return logits


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """log(sum(exp(values))) over the last axis; -inf for a row that is all -inf."""
    peak = values.max(axis=-1)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(values - safe[:, None]).sum(axis=-1))


@dataclass
class WindowDecode:
    """One clip-window being decoded: its sampled tokens and running log-probability."""

    tokens: list[int] = field(default_factory=list)
    sum_logprob: float = 0.0
    no_speech_prob: float = 0.0
    done: bool = False
    language: str | None = None  # multilingual checkpoints: the language decoded in
    language_prob: float | None = None  # set when the language was identified, not given

    @property
    def avg_logprob(self) -> float:
        # openai-whisper divides by the token count plus one (the end-of-text token).
        return self.sum_logprob / (len(self.tokens) + 1)

    def skip_as_silence(self, rules: DecodingRules) -> bool:
        """openai-whisper's no-speech check: likely silence, and not confidently decoded."""
        return self.no_speech_prob > rules.no_speech_threshold and self.avg_logprob <= rules.logprob_threshold


def no_speech_probs(logits: np.ndarray, rules: DecodingRules) -> np.ndarray:
    """P(<|nospeech|>) per row from the raw logits at the start-of-transcript position."""
    logprobs = log_softmax(logits.astype(np.float64))
    return np.exp(logprobs[:, rules.no_speech])


def identify_languages(logits: np.ndarray, rules: DecodingRules) -> list[tuple[str, float]]:
    """(code, probability) per row from the logits at the start-of-transcript position,
    over the language tokens only (as openai-whisper's `detect_language`)."""
    scores = logits[:, list(rules.language_tokens)].astype(np.float64)
    probs = np.exp(log_softmax(scores))
    best = probs.argmax(axis=-1)
    return [(rules.language_codes[int(k)], float(probs[row, k])) for row, k in enumerate(best)]


def greedy_step(logits: np.ndarray, windows: list[WindowDecode], rules: DecodingRules) -> np.ndarray:
    """Pick each row's next token after the rules; update the windows; return the tokens."""
    logits = apply_rules(logits.astype(np.float32, copy=True), [w.tokens for w in windows], rules)
    chosen = logits.argmax(axis=-1)
    logprobs = log_softmax(logits)
    for k, window in enumerate(windows):
        token = int(chosen[k])
        window.sum_logprob += float(logprobs[k, token])
        if token == rules.eot:
            window.done = True
        else:
            window.tokens.append(token)
            if len(window.tokens) >= rules.sample_len:
                window.done = True
    return chosen
