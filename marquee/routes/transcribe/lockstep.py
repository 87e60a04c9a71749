"""Greedy decoding of many windows at once with an ONNX Runtime decoder step (numpy + ORT).

All windows of a batch start together, so they stay at the same step: one decoder call
per step serves the whole batch and the self-attention caches stack naturally as
[B, heads, length, head_dim]. A window that reaches end-of-text leaves the batch: its
rows are dropped from the cross-attention and self-attention tensors (one copy per
finished window), so later steps compute only for windows still decoding.
"""

from __future__ import annotations

import numpy as np

try:  # inside the route's version directory, the helper modules sit side by side
    from decoding import DecodingRules, WindowDecode, greedy_step, identify_languages, no_speech_probs
except ImportError:  # imported as part of the marquee package (tests, export, reference)
    from marquee.routes.transcribe.decoding import (
        DecodingRules,
        WindowDecode,
        greedy_step,
        identify_languages,
        no_speech_probs,
    )

TASKS = ("transcribe", "translate")


class DecoderSession:
    """The decoder step's ONNX Runtime session and its tensor names."""

    def __init__(self, path: str, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Between steps the route does numpy work, and other processes (the encoder) share
        # the cores: idle threads should sleep, not spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in self.session.get_inputs()]
        self.cross_names = [n for n in names if n.startswith("cross_")]
        self.past_names = [n for n in names if n.startswith("past_")]
        self.output_names = [o.name for o in self.session.get_outputs()]
        past_shape = next(i.shape for i in self.session.get_inputs() if i.name == self.past_names[0])
        self.heads, self.head_dim = int(past_shape[1]), int(past_shape[3])

    def step(self, ids: np.ndarray, cross: dict, past: dict) -> tuple[np.ndarray, dict]:
        feeds = {"input_ids": ids, **cross, **past}
        results = self.session.run(self.output_names, feeds)
        present = dict(zip(self.past_names, results[1:], strict=True))
        return results[0], present

    def empty_cache(self, batch: int) -> dict:
        return {name: np.zeros((batch, self.heads, 0, self.head_dim), np.float32) for name in self.past_names}


def decode_windows(
    decoder: DecoderSession,
    cross: dict,
    rules: DecodingRules,
    languages: list[str | None] | None = None,
    task: str = "transcribe",
) -> list[WindowDecode]:
    """Greedy-decode every window whose cross-attention K/V are rows of `cross`.

    Multilingual checkpoints: `languages[k]` is row k's language code, or None to
    identify it from the start-of-transcript logits; `task` is "transcribe" (in the
    spoken language) or "translate" (into English). English-only: both are ignored."""
    batch = next(iter(cross.values())).shape[0]
    windows = [WindowDecode() for _ in range(batch)]
    past = decoder.empty_cache(batch)
    # The prompt goes one token per step so that the first logits sit at the
    # start-of-transcript position, where Whisper reads its no-speech probability and
    # the language.
    prompt = rules.sot_sequence if not rules.multilingual else rules.sot_sequence[:1]
    for index, token in enumerate(prompt):
        logits, past = decoder.step(np.full((batch, 1), token, np.int64), cross, past)
        if index == 0:
            for window, prob in zip(windows, no_speech_probs(logits, rules), strict=True):
                window.no_speech_prob = float(prob)
    if rules.multilingual:
        logits, past = _language_and_task(decoder, cross, past, logits, windows, rules, languages, task)
    active = list(range(batch))
    while True:
        chosen = greedy_step(logits, [windows[k] for k in active], rules)
        keep = [j for j, k in enumerate(active) if not windows[k].done]
        if not keep:
            return windows
        if len(keep) < len(active):
            cross = {name: value[keep] for name, value in cross.items()}
            past = {name: value[keep] for name, value in past.items()}
            chosen = chosen[keep]
            active = [active[j] for j in keep]
        logits, past = decoder.step(chosen.astype(np.int64)[:, None], cross, past)


def _language_and_task(decoder, cross, past, logits, windows, rules, languages, task):
    """Feed each row's language token (given, or identified now) and the task token."""
    if task not in TASKS:
        raise ValueError(f"task={task!r}; allowed: {', '.join(TASKS)}")
    languages = languages or [None] * len(windows)
    identified = identify_languages(logits, rules) if None in languages else [(None, None)] * len(windows)
    tokens = []
    for window, given, (code, prob) in zip(windows, languages, identified, strict=True):
        window.language, window.language_prob = (given, None) if given is not None else (code, prob)
        tokens.append(rules.language_tokens[rules.language_codes.index(window.language)])
    logits, past = decoder.step(np.array(tokens, np.int64)[:, None], cross, past)
    task_token = rules.translate if task == "translate" else rules.transcribe
    return decoder.step(np.full((len(windows), 1), task_token, np.int64), cross, past)
