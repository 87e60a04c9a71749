"""The `analyze_video` route as a Triton Python (BLS) model.

One request carries a list of encoded video files. For each file, in turn:
1. probe the header (PyAV) and apply the limits; decode with the decoder chosen per
   codec (frames.py: DALI for VP8/VP9/MJPEG on the CPU and everything NVDEC takes on a
   GPU, PyAV otherwise), keeping every frame at 48x27 and candidates at the proxy size;
2. TransNetV2 (`boundary_model`, through BLS) judges 100-frame windows, in chunks of
   BOUNDARY_BATCH; transitions and shots follow (shots.py);
3. each shot's keyframe is its best-quality candidate (thumbnails.py);
   EfficientNet-Lite0 (`tagger_model`, through BLS) tags it with ImageNet classes and
   embeds it; shots whose keyframes embed alike are marked near-duplicates (tags.py);
   MTCNN finds its faces: the cascade runs here (faces.py), its three networks
   (`face_*_model`) through BLS;
4. every keyframe goes to the `image_route` (moderate_image: NudeNet, OCR, the text
   route) for a safety decision and its burned-in text; the top thumbnails are the best
   safe keyframes, never an unsafe or unjudged one.

Why not decoupled: the answer is one JSON document per file, complete only once the
last window is judged; a stream of partial shot lists would have to be retracted when a
later window moves a boundary. Long files are bounded by `max_duration_s` instead, and
clients send one file per request to show progress per file.

A bad file (empty, corrupt, truncated, audio only, unsupported codec, over a limit) gives
that file {"error": ..., "error_kind": "input"}; a failing or late model gives
{"error_kind": "model"}. The other files are still analysed. Only a malformed request
(no `video` tensor, wrong shape, too many files) is INVALID_ARG.
"""

from __future__ import annotations

import base64
import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faces as faces_module  # noqa: E402 - needs the path above
import frames as frames_module  # noqa: E402
import shots as shots_module  # noqa: E402
import tags as tags_module  # noqa: E402
import thumbnails as thumbnails_module  # noqa: E402
from route_runtime import (  # noqa: E402
    Dependencies,
    Downstream,
    RouteCall,
    RouteObserver,
    RouteParameters,
    StageFailed,
    answer_each,
    byte_items,
    gather_bounded,
)
from surfaces import load_surfaces  # noqa: E402

BOUNDARY_BATCH = 8  # windows per call: the boundary model's max_batch_size
IMAGES_PER_CALL = 16  # keyframes per image-route request (it accepts up to 64)
CALLS_IN_FLIGHT = 2
KEYFRAME_JPEG_WIDTH = 320
TAGGER_BATCH = 16  # the tagger's max_batch_size
FACE_IMAGES_PER_CALL = 8  # keyframes per P-Net call: its max_batch_size
FACE_CROPS_PER_CALL = 256  # crops per R-Net / O-Net call: their max_batch_size
EMBEDDING_DECIMALS = 4
STAGES = ("decode", "boundaries", "keyframes", "tags", "faces", "moderation")
FACE_DECIMALS = 1  # box coordinates, in source pixels


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = RouteParameters.from_args(args)
        self.name = params.route
        self.boundary_model = params.text("boundary_model")
        self.tagger_model = params.text("tagger_model")
        with open(params.file("labels"), encoding="utf-8") as f:
            self.labels = json.load(f)
        self.max_tags = params.integer("max_tags", minimum=0)
        self.min_tag_probability = params.number("min_tag_probability", minimum=0.0)
        self.image_route = params.text("image_route")
        self.face_models = {
            faces_module.PROPOSAL: params.text("face_proposal_model"),
            faces_module.REFINE: params.text("face_refine_model"),
            faces_module.OUTPUT: params.text("face_output_model"),
        }
        self.face_settings = faces_module.Settings(min_face_px=params.integer("min_face_px", minimum=12))
        self.device = params.text("decode_device")
        if self.device not in ("cpu", "gpu"):
            raise ValueError(f"{self.name}: decode_device={self.device!r}; allowed: cpu, gpu")
        self.sampling = frames_module.Sampling(
            sample_fps=params.number("sample_fps"), proxy_height=params.integer("proxy_height")
        )
        self.limits = frames_module.VideoLimits(
            max_bytes=params.integer("max_video_bytes", minimum=1),
            max_pixels=params.integer("max_video_pixels", minimum=1),
            max_duration_s=params.number("max_duration_s", minimum=1.0),
        )
        self.max_files = params.integer("max_files", minimum=1)
        self.boundary_threshold = params.number("boundary_threshold", minimum=0.0)
        self.transition_threshold = params.number("transition_threshold", minimum=0.0)
        self.top_thumbnails = params.integer("top_thumbnails", minimum=0)
        self.budget_s = {stage: params.budget_s(stage) for stage in ("boundaries", "tags", "faces", "thumbnails")}
        models_file = os.path.join(params.folder, "models.json")
        self.model_versions = {}
        if os.path.isfile(models_file):
            with open(models_file, encoding="utf-8") as f:
                self.model_versions = json.load(f)
        self.downstream = Downstream()
        self.dependencies = Dependencies(self.name, params.composed_models())
        self.observer = RouteObserver(
            self.name, load_surfaces(params.file("surfaces")), STAGES, instances=params.instance_count()
        )

    async def execute(self, requests: list) -> list:
        return await answer_each(requests, self._answer, self.name, self.observer)

    async def _answer(self, request, call: RouteCall):
        items = byte_items(request, "video", "files", self.max_files, "max_files")
        if self.dependencies.missing():
            call.degrade("dependency", self.dependencies.reason())
        results = []
        for index, item in enumerate(items):
            results.append(json.dumps(await self._analyze(index, item, call)))
        output = np.array([r.encode("utf-8") for r in results], dtype=np.object_)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("result", output)])

    # -- one file -------------------------------------------------------------------

    async def _analyze(self, index: int, data: bytes, call: RouteCall) -> dict:
        clock = call.clock
        try:
            with clock.stage("decode"):
                info = frames_module.probe(data, self.limits)
                decoded = frames_module.decode(data, info, self.sampling, self.limits, self.device)
        except frames_module.VideoRejected as error:
            return {"error": f"video[{index}]: {error}", "error_kind": "input"}
        try:
            with clock.stage("boundaries"):
                single, many = await self._boundaries(decoded.boundary)
        except StageFailed as failure:
            call.degrade("boundaries", str(failure))
            return {"error": f"video[{index}]: shot boundaries not judged: {failure}", "error_kind": "model"}
        with clock.stage("keyframes"):
            transitions = shots_module.find_transitions(
                single, many, self.boundary_threshold, self.transition_threshold
            )
            shots = shots_module.shots_between(transitions, decoded.count)
            candidates = [thumbnails_module.measure(i, frame) for i, frame in decoded.samples]
            keyframes = [thumbnails_module.keyframe(candidates, shot.start, shot.end) for shot in shots]
            pixels = dict(decoded.samples)
        unique = list({k.frame: k for k in keyframes if k is not None}.values())
        with clock.stage("tags"):
            untagged = await self._tag(unique, pixels)
        if untagged:
            call.degrade("tags", untagged)
        with clock.stage("faces"):
            unsearched = await self._faces(unique, pixels)
        if unsearched:
            call.degrade("faces", unsearched)
        with clock.stage("moderation"):
            unjudged = await self._moderate([k for k in keyframes if k is not None], pixels)
        if unjudged:
            call.degrade("moderation", unjudged)
        thumbnails = thumbnails_module.top_thumbnails(unique, self.top_thumbnails)
        shot_of = {k.frame: s.index for s, k in zip(shots, keyframes, strict=True) if k is not None}
        duplicates = tags_module.near_duplicates(
            {
                s.index: k.embedding
                for s, k in zip(shots, keyframes, strict=True)
                if k is not None and k.embedding is not None
            }
        )
        fps = decoded.fps
        to_source = _proxy_to_source(info, decoded)
        return {
            "video": {**info.as_json(), "decoder": decoded.decoder, "frames": decoded.count},
            "transitions": [t.as_json(fps) for t in transitions],
            "shots": [
                {**_shot_json(s, k, pixels, fps, to_source), "near_duplicate_of": duplicates.get(s.index)}
                for s, k in zip(shots, keyframes, strict=True)
            ],
            "thumbnails": [
                {
                    "shot": shot_of[c.frame],
                    "frame": c.frame,
                    "time_s": round(c.frame / fps, 3),
                    "score": round(c.score, 4),
                }
                for c in thumbnails
            ],
            "thumbnails_unjudged": unjudged or None,
            "untagged": untagged or None,
            "faces_unsearched": unsearched or None,
            "models": self.model_versions,
            "ms": clock.rounded(),
        }

    async def _boundaries(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows = shots_module.windows(small)
        calls = [
            self.downstream.call(
                self.boundary_model,
                [pb_utils.Tensor("frames", np.ascontiguousarray(windows[s : s + BOUNDARY_BATCH]))],
                ["single_frame", "many_hot"],
                self.budget_s["boundaries"],
            )
            for s in range(0, len(windows), BOUNDARY_BATCH)
        ]
        results = await gather_bounded(calls, CALLS_IN_FLIGHT)
        single = np.concatenate([r["single_frame"] for r in results])
        many = np.concatenate([r["many_hot"] for r in results])
        return shots_module.stitch(single, len(small)), shots_module.stitch(many, len(small))

    async def _tag(self, unique: list, pixels: dict[int, np.ndarray]) -> str:
        """Tags and embedding for every keyframe; '' or why they were not tagged."""
        if not unique:
            return ""
        crops = np.stack([tags_module.tagger_input(pixels[k.frame]) for k in unique])
        calls = [
            self.downstream.call(
                self.tagger_model,
                [pb_utils.Tensor("pixels", np.ascontiguousarray(crops[s : s + TAGGER_BATCH]))],
                ["probabilities", "embedding"],
                self.budget_s["tags"],
            )
            for s in range(0, len(crops), TAGGER_BATCH)
        ]
        try:
            results = await gather_bounded(calls, CALLS_IN_FLIGHT)
        except StageFailed as failure:
            return str(failure)
        probabilities = np.concatenate([r["probabilities"] for r in results])
        embeddings = np.concatenate([r["embedding"] for r in results])
        for keyframe, row, embedding in zip(unique, probabilities, embeddings, strict=True):
            keyframe.tags = tags_module.top_tags(row, self.labels, self.max_tags, self.min_tag_probability)
            keyframe.embedding = embedding
        return ""

    async def _faces(self, unique: list, pixels: dict[int, np.ndarray]) -> str:
        """MTCNN faces of every keyframe; '' or why they were not searched."""
        if not unique:
            return ""

        async def run(stage: str, batch: np.ndarray) -> dict[str, np.ndarray]:
            model = self.face_models[stage]
            per_call = FACE_IMAGES_PER_CALL if stage == faces_module.PROPOSAL else FACE_CROPS_PER_CALL
            names = list(faces_module.OUTPUTS[stage])
            calls = [
                self.downstream.call(
                    model,
                    [pb_utils.Tensor("pixels", np.ascontiguousarray(batch[s : s + per_call]))],
                    names,
                    self.budget_s["faces"],
                )
                for s in range(0, len(batch), per_call)
            ]
            results = await gather_bounded(calls, CALLS_IN_FLIGHT)
            return {name: np.concatenate([r[name] for r in results]) for name in names}

        try:
            found = await faces_module.detect([pixels[k.frame] for k in unique], run, self.face_settings)
        except StageFailed as failure:
            return str(failure)
        for keyframe, frame_faces in zip(unique, found, strict=True):
            keyframe.faces = frame_faces
        return ""

    async def _moderate(self, keyframes: list, pixels: dict[int, np.ndarray]) -> str:
        """Judge every keyframe through the image route; '' or why some were not judged."""
        unique = list({k.frame: k for k in keyframes}.values())
        chunks = [unique[s : s + IMAGES_PER_CALL] for s in range(0, len(unique), IMAGES_PER_CALL)]
        answers = await gather_bounded([self._moderate_chunk(c, pixels) for c in chunks], CALLS_IN_FLIGHT)
        problems = [answer for answer in answers if answer]
        for keyframe in keyframes:  # the same frame may be two short shots' keyframe
            judged = next(u for u in unique if u.frame == keyframe.frame)
            keyframe.decision, keyframe.text, keyframe.labels = judged.decision, judged.text, judged.labels
            keyframe.faces = judged.faces
        return "; ".join(problems)

    async def _moderate_chunk(self, chunk: list, pixels: dict[int, np.ndarray]) -> str:
        import cv2

        images = np.empty(len(chunk), dtype=np.object_)
        for position, candidate in enumerate(chunk):
            bgr = cv2.cvtColor(pixels[candidate.frame], cv2.COLOR_RGB2BGR)
            images[position] = cv2.imencode(".png", bgr)[1].tobytes()
        try:
            outputs = await self.downstream.call(
                self.image_route, [pb_utils.Tensor("image", images)], ["decision", "audit"], self.budget_s["thumbnails"]
            )
        except StageFailed as failure:
            return str(failure)
        for candidate, decision, audit in zip(chunk, outputs["decision"], outputs["audit"], strict=True):
            parsed = json.loads(_text(audit))
            candidate.decision = _text(decision)
            candidate.text = [line["text"] for line in parsed.get("ocr", {}).get("lines", []) if line.get("judged")]
            candidate.labels = parsed.get("scores", {})
        return ""


def _thumbnail_json(candidate, shot: int, fps: float) -> dict:
    return {
        "shot": shot,
        "frame": candidate.frame,
        "time_s": round(candidate.frame / fps, 3),
        "score": round(candidate.score, 4),
    }


def _shot_json(shot, keyframe, pixels: dict[int, np.ndarray], fps: float, to_source: tuple[float, float]) -> dict:
    start_s, end_s = shot.times(fps)
    document = {
        "index": shot.index,
        "start_frame": shot.start,
        "end_frame": shot.end,
        "start_s": round(start_s, 3),
        "end_s": round(end_s, 3),
        "start_timecode": shots_module.timecode(shot.start, fps),
        "transition_in": shot.transition_in,
        "keyframe": None,
    }
    if keyframe is not None:
        document["keyframe"] = {
            "frame": keyframe.frame,
            "time_s": round(keyframe.frame / fps, 3),
            "timecode": shots_module.timecode(keyframe.frame, fps),
            "sharpness": round(keyframe.sharpness, 4),
            "exposure": round(keyframe.exposure, 4),
            "quality": round(keyframe.quality, 4),
            "moderation": keyframe.decision,
            "labels": {k: round(float(v), 4) for k, v in keyframe.labels.items()},
            "text": keyframe.text,
            "tags": keyframe.tags,
            "face_count": None if keyframe.faces is None else len(keyframe.faces),
            "faces": None if keyframe.faces is None else [_face_json(f, to_source) for f in keyframe.faces],
            "embedding": None
            if keyframe.embedding is None
            else np.round(keyframe.embedding, EMBEDDING_DECIMALS).tolist(),
            "jpeg_base64": _jpeg_base64(pixels[keyframe.frame]),
        }
    return document


def _proxy_to_source(info, decoded) -> tuple[float, float]:
    """(x, y) factors from the proxy frames' pixels to the source video's."""
    if not decoded.samples:
        return 1.0, 1.0
    height, width = decoded.samples[0][1].shape[:2]
    return info.width / width, info.height / height


def _face_json(face, to_source: tuple[float, float]) -> dict:
    """A face's box (x1, y1, x2, y2) in the source video's pixels, and its probability."""
    box = face.scaled(*to_source).box
    return {"box": [round(float(v), FACE_DECIMALS) for v in box], "probability": round(face.probability, 4)}


def _jpeg_base64(rgb: np.ndarray) -> str:
    import cv2

    height, width = rgb.shape[:2]
    if width > KEYFRAME_JPEG_WIDTH:
        size = (KEYFRAME_JPEG_WIDTH, max(2, round(height * KEYFRAME_JPEG_WIDTH / width)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(data.tobytes()).decode("ascii") if ok else ""


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
