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

Per-clip problems (empty or undecodable bytes, too long, a failing model call) give that
clip {"error": ...}; the other clips of the request are still transcribed. Only a
malformed request (no `audio` tensor, wrong shape, too many clips) is a request error.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from decoding import DecodingRules  # noqa: E402 - needs the path above
from lockstep import DecoderSession, decode_windows  # noqa: E402
from segments import clip_error, clip_result, segments_json  # noqa: E402
from windows import SAMPLE_RATE, content_frames, silent_window, split_window, window_features  # noqa: E402


class RequestError(Exception):
    """The request as a whole is malformed."""


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
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        repository_root = os.path.dirname(os.path.abspath(args["model_repository"]))
        self.name = config["name"]
        self.version = args["model_version"]
        self.features_model = params["audio_features_model"]
        self.encoder_model = params["encoder_model"]
        self.encoder_batch = int(params["encoder_batch"])
        self.max_duration_s = float(params["max_duration_s"])
        self.max_clips = int(params["max_clips"])
        with open(os.path.join(version_dir, params["rules"])) as f:
            self.rules = DecodingRules.from_json(f.read())
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(version_dir, params["tokenizer"]))
        decoder_path = os.path.join(repository_root, params["decoder_model"], params["model_version"], "model.onnx")
        if not os.path.isfile(decoder_path):
            raise pb_utils.TritonModelException(f"{self.name}: decoder model file not found: {decoder_path}")
        self.decoder = DecoderSession(decoder_path, threads=int(params["decoder_threads"]))
        self.cross_names = self.decoder.cross_names
        self.logger = pb_utils.Logger

    async def execute(self, requests: list) -> list:
        # A coroutine: while one request waits on the encoder or decodes in a worker
        # thread, the event loop keeps the other requests moving.
        return list(await asyncio.gather(*(self._answer(request) for request in requests)))

    # -- one request ------------------------------------------------------------

    async def _answer(self, request):
        try:
            audio = self._read_audio(request)
        except RequestError as error:
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {error}"))
        clips = list(await asyncio.gather(*(self._features(i, data) for i, data in enumerate(audio))))
        while any(clip.active for clip in clips):
            await self._round([clip for clip in clips if clip.active])
        results = [self._result(clip) for clip in clips]
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("result", np.array(results, dtype=object))])

    def _read_audio(self, request) -> list[bytes]:
        tensor = pb_utils.get_input_tensor_by_name(request, "audio")
        if tensor is None:
            raise RequestError("missing input `audio` (TYPE_STRING [clips]: encoded audio files)")
        audio = tensor.as_numpy()
        if audio.ndim != 1:
            raise RequestError(f"input `audio` has shape {list(audio.shape)}; expected [clips]")
        if len(audio) > self.max_clips:
            raise RequestError(f"input `audio` has {len(audio)} clips; at most {self.max_clips} per request")
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
        request = pb_utils.InferenceRequest(
            model_name=self.features_model,
            inputs=[pb_utils.Tensor("audio", np.frombuffer(data, np.uint8)[None])],
            requested_output_names=["mel", "num_samples"],
        )
        try:
            response = await request.async_exec()
        except Exception as error:  # noqa: BLE001 - any BLS failure is this clip's error
            clip.error = f"clip {index}: {self.features_model} failed: {error}"
            return clip
        if response.has_error():
            clip.error = f"clip {index}: could not read the audio: {response.error().message()}"
            return clip
        mel = pb_utils.get_output_tensor_by_name(response, "mel").as_numpy()
        num_samples = int(pb_utils.get_output_tensor_by_name(response, "num_samples").as_numpy().reshape(-1)[0])
        clip.duration_s = num_samples / SAMPLE_RATE
        if clip.duration_s > self.max_duration_s:
            clip.error = (
                f"clip {index}: audio lasts {clip.duration_s:.1f} s; the limit is {self.max_duration_s:.0f} s "
                "per clip (split the file)"
            )
            return clip
        # Copied out of the BLS response's shared memory: the clip outlives the response.
        clip.mel = np.array(mel.reshape(mel.shape[-2], mel.shape[-1]))
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
        request = pb_utils.InferenceRequest(
            model_name=self.encoder_model,
            inputs=[pb_utils.Tensor("input_features", features)],
            requested_output_names=self.cross_names,
        )
        try:
            response = await request.async_exec()
        except Exception as error:  # noqa: BLE001
            return f"{self.encoder_model} failed: {error}"
        if response.has_error():
            return f"{self.encoder_model} failed: {response.error().message()}"
        # Copies (~18 MB per window, ~1% of the encoder's time) so that the decoder never
        # reads shared memory whose response has been released.
        return {
            name: np.array(pb_utils.get_output_tensor_by_name(response, name).as_numpy()) for name in self.cross_names
        }

    def _segments(self, raw, duration_s: float) -> list[dict]:
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        out = segments_json(raw, decode, self.rules.timestamp_begin, self.rules.eot)
        for segment in out:
            # A window's last timestamp may point into its zero padding; never past the clip.
            segment["start"] = min(segment["start"], round(duration_s, 3))
            segment["end"] = min(segment["end"], round(duration_s, 3))
        return out
