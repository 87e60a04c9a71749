"""The `transcribe` route as a Triton Python (BLS) model.

One request carries a list of encoded audio files (clips). For each clip:
1. `audio_features` (DALI, through BLS) decodes and resamples it and returns the log-mel
   of the whole clip; all clips' calls run concurrently;
2. windows: every clip still transcribing contributes its next 30-second window; the
   windows of all clips go to the encoder together (through BLS, in chunks of
   `encoder_batch`; the encoder's dynamic batcher also merges concurrent requests);
3. decoding: all windows of the round are greedy-decoded in lockstep by the decoder step
   model, run in this process (see marquee/specs/whisper.py for why), one call per step
   for the whole batch, with Whisper's timestamp rules;
4. each clip's window becomes segments with absolute times, and its next window starts
   where Whisper's seek rule says; rounds repeat until every clip is done.

Per-clip problems (empty or undecodable bytes, too long, a failing or late model call)
give that clip {"error": ...}; the other clips of the request are still transcribed.
Only a malformed request (no `audio` tensor, wrong shape, too many clips) is a request
error, INVALID_ARG. Every BLS call has a deadline from the spec.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audio_header import AudioRejected, check_audio  # noqa: E402 - needs the path above
from decoding import DecodingRules  # noqa: E402
from lockstep import DecoderSession, decode_windows  # noqa: E402
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
)
from segments import clip_error, clip_result, segments_json  # noqa: E402
from surfaces import load_surfaces  # noqa: E402
from windows import SAMPLE_RATE, content_frames, silent_window, split_window, window_features  # noqa: E402


@dataclass
class Clip:
    index: int
    mel: np.ndarray | None = None
    frames: int = 0
    clip_max: float = 0.0  # loudest normalised log-mel value of the clip's content
    duration_s: float = 0.0
    seek: int = 0
    segments: list = field(default_factory=list)
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.error is None and self.seek < self.frames


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = RouteParameters.from_args(args)
        self.name = params.route
        self.version = args["model_version"]
        self.features_model = params.text("audio_features_model")
        self.encoder_model = params.text("encoder_model")
        self.encoder_batch = params.integer("encoder_batch", minimum=1)
        self.max_duration_s = params.number("max_duration_s", minimum=1.0)
        self.max_clips = params.integer("max_clips", minimum=1)
        self.budget_s = {stage: params.budget_s(stage) for stage in ("features", "encoder")}
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
        if self.dependencies.missing():
            call.degrade("dependency", self.dependencies.reason())
        with call.clock.stage("features"):
            clips = list(await asyncio.gather(*(self._features(i, data) for i, data in enumerate(audio))))
        with call.clock.stage("decode"):
            while any(clip.active for clip in clips):
                await self._round([clip for clip in clips if clip.active])
        results = [self._result(clip) for clip in clips]
        transcribed = sum(clip.duration_s for clip in clips if clip.error is None)
        self.audio_seconds.add(transcribed, surface=call.surface)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("result", np.array(results, dtype=object))])

    def _read_audio(self, request) -> list[bytes]:
        tensor = pb_utils.get_input_tensor_by_name(request, "audio")
        if tensor is None:
            raise RouteInputError("missing input `audio` (TYPE_STRING [clips]: encoded audio files)")
        audio = tensor.as_numpy()
        if audio.ndim != 1:
            raise RouteInputError(f"input `audio` has shape {list(audio.shape)}; expected [clips]")
        if len(audio) > self.max_clips:
            raise RouteInputError(f"input `audio` has {len(audio)} clips; at most {self.max_clips} per request")
        return [bytes(item) for item in audio]

    def _result(self, clip: Clip) -> str:
        if clip.error is not None:
            return clip_error(clip.error)
        return clip_result(clip.duration_s, clip.segments, self.name, self.version)

    # -- stage 1: features ----------------------------------------------------------

    async def _features(self, index: int, data: bytes) -> Clip:
        clip = Clip(index)
        if not data:
            clip.error = f"clip {index}: `audio` is empty (0 bytes); expected an encoded WAV, FLAC or OGG file"
            return clip
        try:  # before decoding: the header sets what the decoder allocates (also ahead of a native DALI backend)
            check_audio(data, self.max_duration_s)
        except AudioRejected as rejected:
            clip.error = f"clip {index}: could not read the audio: {rejected}"
            return clip
        inputs = [pb_utils.Tensor("audio", np.frombuffer(data, np.uint8)[None])]
        try:
            outputs = await self.downstream.call(
                self.features_model, inputs, ["mel", "num_samples"], self.budget_s["features"]
            )
        except StageFailed as failure:
            reading = "could not read the audio" if failure.invalid_input else f"{self.features_model} failed"
            clip.error = f"clip {index}: {reading}: {failure}"
            return clip
        mel = outputs["mel"]
        num_samples = int(outputs["num_samples"].reshape(-1)[0])
        clip.duration_s = num_samples / SAMPLE_RATE
        if clip.duration_s > self.max_duration_s:
            clip.error = (
                f"clip {index}: audio lasts {clip.duration_s:.1f} s; the limit is {self.max_duration_s:.0f} s "
                "per clip (split the file)"
            )
            return clip
        clip.mel = mel.reshape(mel.shape[-2], mel.shape[-1])
        clip.frames = content_frames(num_samples, clip.mel.shape[1])
        clip.clip_max = float(clip.mel[:, : clip.frames].max()) if clip.frames else 0.0
        return clip

    # -- stages 2-4: one round of windows -----------------------------------------------

    async def _round(self, clips: list[Clip]) -> None:
        # Silent windows are skipped without touching the models (see windows.silent_window).
        for clip in clips:
            while clip.active:
                window, size = window_features(clip.mel, clip.seek, clip.frames)
                if not silent_window(window, size, clip.clip_max):
                    break
                clip.seek += size
        clips = [clip for clip in clips if clip.active]
        if not clips:
            return
        windows = [window_features(clip.mel, clip.seek, clip.frames) for clip in clips]
        features = np.stack([w for w, _ in windows])
        chunks = [range(s, min(s + self.encoder_batch, len(clips))) for s in range(0, len(clips), self.encoder_batch)]
        encoded = await asyncio.gather(*(self._encode(features[c.start : c.stop]) for c in chunks))
        for chunk, outputs in zip(chunks, encoded, strict=True):
            if isinstance(outputs, str):
                for k in chunk:
                    clips[k].error = f"clip {clips[k].index}: {outputs}"
        ok = [k for k, clip in enumerate(clips) if clip.error is None]
        if not ok:
            return
        cross = {
            name: np.concatenate([encoded[i][name] for i, c in enumerate(chunks) if not isinstance(encoded[i], str)])
            if len(chunks) > 1
            else encoded[0][name]
            for name in self.cross_names
        }
        decoded = await asyncio.to_thread(decode_windows, self.decoder, cross, self.rules)
        for k, window in zip(ok, decoded, strict=True):
            clip, size = clips[k], windows[k][1]
            if window.skip_as_silence(self.rules):
                clip.seek += size
                continue
            raw, clip.seek = split_window(window.tokens, clip.seek, size, self.rules.timestamp_begin)
            clip.segments += self._segments(raw, clip.duration_s)

    async def _encode(self, features: np.ndarray):
        """Cross-attention K/V per decoder layer for a batch of windows, or an error message."""
        inputs = [pb_utils.Tensor("input_features", features)]
        try:
            return await self.downstream.call(self.encoder_model, inputs, self.cross_names, self.budget_s["encoder"])
        except StageFailed as failure:
            return str(failure)

    def _segments(self, raw, duration_s: float) -> list[dict]:
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        out = segments_json(raw, decode, self.rules.timestamp_begin, self.rules.eot)
        for segment in out:
            # A window's last timestamp may point into its zero padding; never past the clip.
            segment["start"] = min(segment["start"], round(duration_s, 3))
            segment["end"] = min(segment["end"], round(duration_s, 3))
        return out
