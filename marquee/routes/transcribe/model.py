"""The `transcribe` route as a Triton Python (BLS) model.

One request carries a list of encoded media files (clips): any audio or video container
FFmpeg reads. For each clip:
1. decoding: PyAV (FFmpeg) decodes the first audio track to 16 kHz mono samples, in a
   worker thread; all clips decode concurrently (see media.py);
2. windows, in one of two modes (request parameter `mode`, default from the spec):
   - `batched`: `silero_vad` (through BLS) scores the clip; it is cut at silence into
     chunks of at most 30 s (vad.py); the chunks of all clips of the request form one
     queue, decoded `decode_batch` at a time, the next batch encoding while this one
     decodes. A chunk keeps every segment Whisper's timestamp tokens mark
     (windows.chunk_segments); where decoding stopped well before its end, the rest is
     queued once more as a chunk of its own (windows.stopped_early_at);
   - `sequential`: openai-whisper's seek: every clip still transcribing contributes its
     next 30-second window, and the next window starts where the last complete
     timestamp of this one says (windows.split_window);
   the log-mel of each window or chunk is computed when it is needed (features.py), so
   a 2-hour file never has its whole mel in memory;
3. the round's windows go to the encoder together (through BLS, in chunks of
   `encoder_batch`; its dynamic batcher also merges concurrent requests), and are
   greedy-decoded in lockstep by the decoder step model, run in this process (see
   marquee/specs/whisper.py for why), one call per step for the whole batch.

Per-clip problems (empty, corrupt or unsupported media, no audio track, too long, a
failing or late model call) give that clip {"error": ...}; the other clips of the
request are still transcribed. Only a malformed request (no `audio` tensor, wrong shape,
too many clips, an unknown `mode`) is a request error, INVALID_ARG. Every BLS call has a
deadline from the spec.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decoding import DecodingRules  # noqa: E402 - needs the path above
from features import N_MELS, ClipMel, chunk_mel  # noqa: E402
from lockstep import TASKS, DecoderSession, decode_windows  # noqa: E402
from media import ClipTooLong, MediaError, decode_audio  # noqa: E402
from route_runtime import (  # noqa: E402
    Dependencies,
    Downstream,
    LabelledCounter,
    RouteCall,
    RouteInputError,
    RouteObserver,
    RouteParameters,
    StageFailed,
    answer_each,
    request_parameters,
    return_large_frees_to_os,
)
from segments import clip_error, clip_result, segments_json  # noqa: E402
from surfaces import load_surfaces  # noqa: E402
from vad import BLOCK_FRAMES, STATE_SHAPE, Chunk, chunks_from_probs, frame_count, model_input  # noqa: E402
from windows import (  # noqa: E402
    HOP_LENGTH,
    N_FRAMES,
    SAMPLE_RATE,
    TAIL_MIN_S,
    chunk_segments,
    content_frames,
    silent_window,
    split_window,
    stopped_early_at,
)

MODES = ("batched", "sequential")
VAD_OUTPUTS = ["speech_probs", "hn", "cn"]
AUTO = "auto"  # request parameter `language`: identify it (multilingual checkpoints)


@dataclass(frozen=True)
class Options:
    """What a request may choose (request parameters), checked once per request."""

    mode: str
    language: str | None  # None: identified per window/chunk
    task: str


@dataclass
class Clip:
    index: int
    samples: np.ndarray | None = None
    duration_s: float = 0.0
    mel: ClipMel | None = None  # sequential mode
    frames: int = 0  # content frames (sequential mode)
    seek: int = 0
    chunks: list[Chunk] = field(default_factory=list)  # batched mode
    languages: dict = field(default_factory=dict)  # language -> seconds decoded in it
    segments: list = field(default_factory=list)
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.error is None and self.seek < self.frames

    def fail(self, message: str) -> None:
        self.error = f"clip {self.index}: {message}"
        self.samples, self.mel = None, None  # free the audio at once


def _chunk_features(batch: list) -> np.ndarray:
    """[chunks, 80, 3000]: each (clip, chunk)'s log-mel, computed now (bounded memory)."""
    return np.stack([chunk_mel(clip.samples[chunk.start : chunk.stop]) for clip, chunk in batch])


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = RouteParameters.from_args(args)
        return_large_frees_to_os()  # peak memory on a 2-hour file: see perf/reports/transcription.json
        self.name = params.route
        self.version = args["model_version"]
        self.vad_model = params.text("vad_model")
        self.default_mode = params.text("default_mode")
        if self.default_mode not in MODES:
            raise pb_utils.TritonModelException(f"{self.name}: default_mode={self.default_mode!r}; allowed: {MODES}")
        self.decode_batch = params.integer("decode_batch", minimum=1)
        self.encoder_model = params.text("encoder_model")
        self.encoder_batch = params.integer("encoder_batch", minimum=1)
        self.max_duration_s = params.number("max_duration_s", minimum=1.0)
        self.max_clips = params.integer("max_clips", minimum=1)
        self.budget_s = {stage: params.budget_s(stage) for stage in ("vad", "encoder")}
        with open(params.file("rules")) as f:
            self.rules = DecodingRules.from_json(f.read())
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(params.file("tokenizer"))
        decoder_path = params.file("decoder_file")
        if not os.path.isfile(decoder_path):
            raise pb_utils.TritonModelException(
                f"{self.name}: {params.text('decoder_model')}'s file is missing from the route's folder: {decoder_path}"
            )
        self.decoder = DecoderSession(decoder_path, threads=params.integer("decoder_threads", minimum=1))
        self.cross_names = self.decoder.cross_names
        self.downstream = Downstream()
        self.dependencies = Dependencies(self.name, params.composed_models())
        self.observer = RouteObserver(
            self.name, load_surfaces(params.file("surfaces")), ("features", "decode"), instances=params.instance_count()
        )
        # Audio hours per surface: with compute-seconds, the cost per audio hour.
        self.audio_seconds = LabelledCounter(
            "marquee_transcription_audio_seconds_total",
            "seconds of audio transcribed (clips that did not fail), by surface",
            self.name,
            ("surface",),
        )
        self.logger = pb_utils.Logger

    async def execute(self, requests: list) -> list:
        # A coroutine: while one request waits on the encoder or decodes in a worker
        # thread, the event loop keeps the other requests moving.
        return await answer_each(requests, self._answer, self.name, self.observer)

    # -- one request ------------------------------------------------------------

    async def _answer(self, request, call: RouteCall):
        audio = self._read_audio(request)
        options = self._options(request)
        mode = options.mode
        if self.dependencies.missing():
            call.degrade("dependency", self.dependencies.reason())
        with call.clock.stage("features"):
            clips = list(await asyncio.gather(*(self._decode(i, data) for i, data in enumerate(audio))))
            del audio  # decoded: the encoded files are not needed again
            if mode == "batched":
                await asyncio.gather(*(self._speech_chunks(clip) for clip in clips if clip.error is None))
        with call.clock.stage("decode"):
            if mode == "batched":
                await self._batched(clips, options)
            else:
                await self._sequential(clips, options)
        results = [self._result(clip, options) for clip in clips]
        transcribed = sum(clip.duration_s for clip in clips if clip.error is None)
        self.audio_seconds.add(transcribed, surface=call.surface)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("result", np.array(results, dtype=object))])

    def _read_audio(self, request) -> list[bytes]:
        tensor = pb_utils.get_input_tensor_by_name(request, "audio")
        if tensor is None:
            raise RouteInputError("missing input `audio` (TYPE_STRING [clips]: encoded media files)")
        audio = tensor.as_numpy()
        if audio.ndim != 1:
            raise RouteInputError(f"input `audio` has shape {list(audio.shape)}; expected [clips]")
        if len(audio) > self.max_clips:
            raise RouteInputError(f"input `audio` has {len(audio)} clips; at most {self.max_clips} per request")
        return [bytes(item) for item in audio]

    def _options(self, request) -> Options:
        parameters = request_parameters(request)
        mode = parameters.get("mode", self.default_mode)
        if mode not in MODES:
            raise RouteInputError(f"request parameter `mode` is {mode!r}; allowed: {', '.join(MODES)}")
        task = parameters.get("task", "transcribe")
        if task not in TASKS:
            raise RouteInputError(f"request parameter `task` is {task!r}; allowed: {', '.join(TASKS)}")
        language = parameters.get("language", AUTO)
        if not self.rules.multilingual:
            if language not in (AUTO, "en") or task != "transcribe":
                raise RouteInputError(
                    f"{self.name} serves an English-only model: `language` may only be en and `task` only "
                    f"transcribe (got language={language!r}, task={task!r}); use transcribe_base for other "
                    "languages and translation"
                )
            return Options(mode, None, task)
        if language != AUTO and language not in self.rules.language_codes:
            raise RouteInputError(
                f"request parameter `language` is {language!r}; allowed: {AUTO} or one of Whisper's codes "
                f"({', '.join(self.rules.language_codes[:12])}, ...)"
            )
        return Options(mode, None if language == AUTO else language, task)

    def _result(self, clip: Clip, options: Options) -> str:
        if clip.error is not None:
            return clip_error(clip.error)
        extra = {"mode": options.mode}
        if self.rules.multilingual:
            # The clip's language: the one most of its decoded audio was in.
            language = max(clip.languages, key=clip.languages.get) if clip.languages else options.language
            extra.update(task=options.task, language=language, languages=sorted(clip.languages))
        return clip_result(clip.duration_s, clip.segments, self.name, self.version, **extra)

    # -- stage 1: decoding and features ---------------------------------------------

    async def _decode(self, index: int, data: bytes) -> Clip:
        clip = Clip(index)
        label = f"clip {index}"
        try:
            clip.samples = await asyncio.to_thread(decode_audio, data, label, self.max_duration_s)
        except ClipTooLong:
            clip.fail(
                f"audio lasts over {self.max_duration_s:.0f} s; the limit is {self.max_duration_s:.0f} s "
                "per clip (split the file)"
            )
            return clip
        except MediaError as error:
            clip.error = str(error)
            return clip
        clip.duration_s = clip.samples.size / SAMPLE_RATE
        return clip

    async def _speech_chunks(self, clip: Clip) -> None:
        """Batched mode: score the clip with `silero_vad`, block by block, and cut it."""
        frames = frame_count(clip.samples.size)
        state = {"h": np.zeros(STATE_SHAPE, np.float32), "c": np.zeros(STATE_SHAPE, np.float32)}
        probs = []
        for first in range(0, frames, BLOCK_FRAMES):
            block = model_input(clip.samples, first, min(BLOCK_FRAMES, frames - first))
            inputs = [pb_utils.Tensor("input", block), *(pb_utils.Tensor(k, v) for k, v in state.items())]
            try:
                out = await self.downstream.call(self.vad_model, inputs, VAD_OUTPUTS, self.budget_s["vad"])
            except StageFailed as failure:
                clip.fail(f"voice activity detection failed: {failure}")
                return
            probs.append(out["speech_probs"].reshape(-1))
            state = {"h": out["hn"], "c": out["cn"]}
        clip.chunks = chunks_from_probs(np.concatenate(probs), clip.samples.size)

    # -- stage 2, batched: chunks of every clip, `decode_batch` at a time ----------------

    async def _batched(self, clips: list[Clip], options: Options) -> None:
        queue = deque((clip, chunk) for clip in clips if clip.error is None for chunk in clip.chunks)

        # A two-stage pipeline: the next batch's features and encoder call run while this
        # batch decodes. The decoder takes one core in this process and the encoder runs in
        # its own; one after the other, one core idled through every decode (a long file
        # is one request, so no other request fills it).
        def encode_next():  # the next batch's features and encoder call, started now
            return asyncio.ensure_future(self._encode_batch(self._take(queue))) if queue else None

        encoding = encode_next()
        while encoding is not None:
            batch, encoded = await encoding
            encoding = encode_next()
            if not batch:
                continue
            decoded = await self._decode_encoded(encoded, options)
            for (clip, chunk), window in zip(batch, decoded, strict=True):
                if clip.error is not None:  # failed while this batch was encoding: its answer is the error
                    continue
                if isinstance(window, str):
                    clip.fail(window)
                    continue
                if not window.skip_as_silence(self.rules):
                    raw = chunk_segments(window.tokens, chunk.start_s, chunk.duration_s, self.rules.timestamp_begin)
                    clip.segments += self._segments(raw, clip, window, chunk.duration_s)
                stopped = stopped_early_at(window.tokens, chunk.duration_s, self.rules.timestamp_begin, TAIL_MIN_S)
                if stopped is not None and not chunk.tail:  # once per chunk: a tail has no tail
                    queue.append((clip, chunk.after(stopped)))
            if encoding is None:  # the queue ran dry before this batch queued its tails
                encoding = encode_next()
        for clip in clips:
            clip.samples = None
            clip.segments.sort(key=lambda segment: segment["start"])  # tails come back late

    def _take(self, queue: deque) -> list:
        return [queue.popleft() for _ in range(min(self.decode_batch, len(queue)))]

    async def _encode_batch(self, batch: list) -> tuple[list, tuple]:
        """Features and encoder outputs for the chunks of `batch` whose clip has not failed."""
        batch = [(clip, chunk) for clip, chunk in batch if clip.error is None]
        if not batch:
            return batch, ()
        features = await asyncio.to_thread(_chunk_features, batch)
        return batch, await self._encode_rows(features)

    # -- stage 2, sequential: one 30-second window per clip and round ----------------------

    async def _sequential(self, clips: list[Clip], options: Options) -> None:
        ok = [clip for clip in clips if clip.error is None]
        mels = await asyncio.gather(*(asyncio.to_thread(ClipMel, clip.samples) for clip in ok))
        for clip, mel in zip(ok, mels, strict=True):
            clip.mel, clip.frames = mel, content_frames(clip.samples.size, mel.frames)
        while any(clip.active for clip in clips):
            await self._round([clip for clip in clips if clip.active], options)
        for clip in clips:
            clip.samples, clip.mel = None, None

    def _window(self, clip: Clip) -> tuple[np.ndarray, int]:
        size = min(N_FRAMES, clip.frames - clip.seek)
        window = np.zeros((N_MELS, N_FRAMES), np.float32)
        window[:, :size] = clip.mel.window(clip.seek, size)
        return window, size

    async def _round(self, clips: list[Clip], options: Options) -> None:
        windows = {}
        # Silent windows are skipped without touching the models (see windows.silent_window).
        for clip in clips:
            while clip.active:
                window, size = await asyncio.to_thread(self._window, clip)
                if not silent_window(window, size, clip.mel.clip_max):
                    windows[clip.index] = (window, size)
                    break
                clip.seek += size
        clips = [clip for clip in clips if clip.active]
        if not clips:
            return
        features = np.stack([windows[clip.index][0] for clip in clips])
        decoded = await self._encode_and_decode(features, options)
        for clip, window in zip(clips, decoded, strict=True):
            size = windows[clip.index][1]
            if isinstance(window, str):
                clip.fail(window)
            elif window.skip_as_silence(self.rules):
                clip.seek += size
            else:
                start = clip.seek
                raw, clip.seek = split_window(window.tokens, clip.seek, size, self.rules.timestamp_begin)
                clip.segments += self._segments(raw, clip, window, (clip.seek - start) * HOP_LENGTH / SAMPLE_RATE)

    # -- stage 3: encoder (BLS) and lockstep decoding (in process) ------------------------

    async def _encode_and_decode(self, features: np.ndarray, options: Options) -> list:
        """One decoded window (or an error message) per row of `features`."""
        return await self._decode_encoded(await self._encode_rows(features), options)

    async def _encode_rows(self, features: np.ndarray) -> tuple[list, list]:
        """Encode `features` in chunks of `encoder_batch`: (an error message or None per
        row, [(rows, encoder outputs)] for the chunks that succeeded)."""
        rows = len(features)
        chunks = [range(s, min(s + self.encoder_batch, rows)) for s in range(0, rows, self.encoder_batch)]
        encoded = await asyncio.gather(*(self._encode(features[c.start : c.stop]) for c in chunks))
        results: list = [None] * rows
        good = []
        for chunk, outputs in zip(chunks, encoded, strict=True):
            if isinstance(outputs, str):
                for k in chunk:
                    results[k] = outputs
            else:
                good.append((chunk, outputs))
        return results, good

    async def _decode_encoded(self, encoded: tuple[list, list], options: Options) -> list:
        """_encode_rows' result decoded: one window (or the row's error message) per row."""
        results, good = encoded
        if not good:
            return results
        rows = [k for chunk, _ in good for k in chunk]
        if len(good) == 1:
            cross = good[0][1]
        else:
            cross = {name: np.concatenate([outputs[name] for _, outputs in good]) for name in self.cross_names}
        good.clear()  # the encoder's own outputs go now, not after decoding: a batch's K/V is 150 MB
        languages = [options.language] * len(rows)
        decoded = await asyncio.to_thread(decode_windows, self.decoder, cross, self.rules, languages, options.task)
        for k, window in zip(rows, decoded, strict=True):
            results[k] = window
        return results

    async def _encode(self, features: np.ndarray):
        """Cross-attention K/V per decoder layer for a batch of windows, or an error message."""
        inputs = [pb_utils.Tensor("input_features", features)]
        try:
            return await self.downstream.call(self.encoder_model, inputs, self.cross_names, self.budget_s["encoder"])
        except StageFailed as failure:
            return str(failure)

    def _segments(self, raw, clip: Clip, window, seconds: float) -> list[dict]:
        """The window's segments as JSON; `seconds` of audio were decoded in its language."""
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        out = segments_json(raw, decode, self.rules.timestamp_begin, self.rules.eot)
        for segment in out:
            # A window's last timestamp may point into its zero padding; never past the clip.
            segment["start"] = min(segment["start"], round(clip.duration_s, 3))
            segment["end"] = min(segment["end"], round(clip.duration_s, 3))
            if window.language is not None:
                segment["language"] = window.language
        if window.language is not None and out:
            clip.languages[window.language] = clip.languages.get(window.language, 0.0) + seconds
        return out
