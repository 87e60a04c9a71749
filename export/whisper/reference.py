"""PyTorch reference transcription: the transformers model, greedy, with timestamp rules.

The served route must match this token for token. Model calls are plain transformers
forward passes (no key/value cache: every step re-runs the decoder over the whole
prefix), so the reference shares no graph, cache or batching code with the ONNX path;
it shares only the decoding rules and the window logic (marquee/routes/transcribe).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from export.whisper.convert import SpecialTokens
from marquee.routes.transcribe.decoding import DecodingRules, WindowDecode, greedy_step, no_speech_probs
from marquee.routes.transcribe.windows import RawSegment, content_frames, silent_window, split_window, window_features


def decoding_rules(
    tokens: SpecialTokens, suppress: list[int], begin_suppress: list[int], languages: dict[int, str] | None = None
) -> DecodingRules:
    """`languages`: token id -> code, for multilingual checkpoints (see convert.language_tokens)."""
    languages = languages or {}
    return DecodingRules(
        sot_sequence=(tokens.sot,) if not tokens.multilingual else (tokens.sot, tokens.sot + 1, tokens.transcribe),
        eot=tokens.eot,
        no_speech=tokens.no_speech,
        no_timestamps=tokens.no_timestamps,
        timestamp_begin=tokens.timestamp_begin,
        vocab_size=tokens.vocab_size,
        suppress=tuple(sorted(set(suppress))),
        begin_suppress=tuple(sorted(set(begin_suppress))),
        language_tokens=tuple(sorted(languages)),
        language_codes=tuple(languages[k] for k in sorted(languages)),
        transcribe=tokens.transcribe,
        translate=tokens.translate,
    )


@dataclass
class WindowResult:
    seek: int
    segment_size: int
    decode: WindowDecode
    skipped: bool


@torch.no_grad()
def decode_window(model, window: np.ndarray, rules: DecodingRules) -> WindowDecode:
    """Greedy-decode one [80, 3000] window."""
    hidden = model.model.encoder(torch.from_numpy(window[None])).last_hidden_state
    prompt = list(rules.sot_sequence)
    state = WindowDecode()
    while not state.done:
        ids = torch.tensor([prompt + state.tokens])
        out = model.model.decoder(input_ids=ids, encoder_hidden_states=hidden, use_cache=False).last_hidden_state
        logits = model.proj_out(out).float().numpy()[0]
        if not state.tokens and state.sum_logprob == 0.0:
            state.no_speech_prob = float(no_speech_probs(logits[:1], rules)[0])
        greedy_step(logits[-1:].copy(), [state], rules)
    return state


def transcribe_mel(model, mel: np.ndarray, num_samples: int, rules: DecodingRules):
    """(segments, per-window results) for a whole clip's normalised log-mel [80, T]."""
    frames = content_frames(num_samples, mel.shape[1])
    seek, segments, windows = 0, [], []
    clip_max = float(mel[:, :frames].max()) if frames else 0.0
    while seek < frames:
        window, size = window_features(mel, seek, frames)
        if silent_window(window, size, clip_max):
            seek += size
            continue
        state = decode_window(model, window, rules)
        if state.skip_as_silence(rules):
            windows.append(WindowResult(seek, size, state, skipped=True))
            seek += size
            continue
        windows.append(WindowResult(seek, size, state, skipped=False))
        found, seek = split_window(state.tokens, seek, size, rules.timestamp_begin)
        segments.extend(found)
    return segments, windows


def clip_tokens(segments: list[RawSegment]) -> list[int]:
    return [t for s in segments for t in s.tokens]
