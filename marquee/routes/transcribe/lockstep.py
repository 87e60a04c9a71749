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
    from decoding import DecodingRules, WindowDecode, greedy_step, no_speech_probs
except ImportError:  # imported as part of the marquee package (tests, export, reference)
    from marquee.routes.transcribe.decoding import DecodingRules, WindowDecode, greedy_step, no_speech_probs


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


def decode_windows(decoder: DecoderSession, cross: dict, rules: DecodingRules) -> list[WindowDecode]:
    """Greedy-decode every window whose cross-attention K/V are rows of `cross`."""
    batch = next(iter(cross.values())).shape[0]
    windows = [WindowDecode() for _ in range(batch)]
    past = decoder.empty_cache(batch)
    # The prompt goes one token per step so that the first logits sit at the
    # start-of-transcript position, where Whisper reads its no-speech probability.
    for index, token in enumerate(rules.sot_sequence):
        logits, past = decoder.step(np.full((batch, 1), token, np.int64), cross, past)
        if index == 0:
            for window, prob in zip(windows, no_speech_probs(logits, rules), strict=True):
                window.no_speech_prob = float(prob)
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
