"""Frames for `analyze_video`: probe a file, refuse what cannot be analysed, then one
frame-sampling pipeline with the decoder chosen per codec.

Why two decoders. DALI's video decoder is the one to use where it works: on GPU hosts its
"mixed" backend decodes on NVDEC (H.264, HEVC, AV1, MPEG-4, VP8/9, MJPEG) and hands the
frames to the resize on the GPU. On CPU hosts the `nvidia-dali-cuda120` 2.4 wheel's CPU
backend decodes only VP8, VP9 and MJPEG; it refuses H.264 ("Codec 27 (h264) is not
supported by the CPU variant"), which is what most footage is. PyAV (FFmpeg's libavcodec,
bundled in its wheel) decodes every codec on the CPU, streams frame by frame (a file
never sits decoded in memory) and scales in the decoder's own thread. So:

    GPU host                         -> DALI, mixed (NVDEC)      [never run here: no GPU]
    CPU host, VP8 / VP9 / MJPEG      -> DALI, cpu
    CPU host, H.264 / HEVC / MPEG-4 / MPEG-2 / AV1 -> PyAV

Both decoders deliver RGB frames at the proxy resolution (default 360 lines: shot
boundaries are judged on 48x27 frames, and keyframe scoring on a small proxy does as
well as on the full frame), and the rest is shared (`FrameSampler`): every frame shrinks
to the 48x27 the boundary model reads, and frames at `sample_fps` are kept as
keyframe/thumbnail candidates. Frame times are index / frame rate (constant frame rate).

Every refusal is a `VideoRejected` whose message says what was found and what is allowed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

BOUNDARY_WIDTH, BOUNDARY_HEIGHT = 48, 27  # TransNetV2's input frame
DALI_CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
NVDEC_CODECS = frozenset({"h264", "hevc", "av1", "mpeg4", "vp8", "vp9", "mjpeg"})
SUPPORTED_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "av1", "vp8", "vp9", "mjpeg"})
DALI_CHUNK_FRAMES = 64  # frames per DALI run: bounds memory at full resolution


class VideoRejected(ValueError):
    """The file cannot be analysed (corrupt, truncated, no video, over a limit, ...)."""


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int = 2 * 1024**3
    max_pixels: int = 4096 * 2304  # DCI 4K fits; 8K does not
    max_duration_s: float = 1800.0


@dataclass(frozen=True)
class Sampling:
    sample_fps: float = 2.0  # keyframe / thumbnail candidates per second
    proxy_height: int = 360

    def __post_init__(self) -> None:
        if not 0 < self.sample_fps <= 30:
            raise ValueError(f"sample_fps={self.sample_fps}; allowed: (0, 30]")
        if not 32 <= self.proxy_height <= 2160:
            raise ValueError(f"proxy_height={self.proxy_height}; allowed: 32 to 2160")

    def proxy_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the proxy: at most `proxy_height` lines, aspect kept, even sizes."""
        target = min(self.proxy_height, height)
        return max(2, round(width * target / height / 2) * 2), max(2, target // 2 * 2)


@dataclass(frozen=True)
class VideoInfo:
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    frames: int  # from the header; 0 when the container does not say
    audio_streams: int

    @property
    def expected_frames(self) -> int:
        return self.frames or int(round(self.duration_s * self.fps))

    def as_json(self) -> dict:
        return {
            "container": self.container,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 4),
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class Frames:
    """What the rest of the route reads: every frame at 48x27, candidates at the proxy size."""

    fps: float
    decoder: str
    boundary: np.ndarray  # uint8 [frames, 27, 48, 3]
    samples: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (frame index, RGB proxy)

    @property
    def count(self) -> int:
        return len(self.boundary)


def probe(data: bytes, limits: VideoLimits) -> VideoInfo:
    """Read the container's header (nothing is decoded) and apply the limits."""
    import av

    if len(data) == 0:
        raise VideoRejected("the file is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise VideoRejected(
            f"the file has {len(data):,} bytes; allowed: at most {limits.max_bytes:,} (max_video_bytes)"
        )
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            info = _header(container)
    except VideoRejected:
        raise
    except (av.FFmpegError, ValueError, OSError) as error:
        raise VideoRejected(f"not a readable video container (corrupt or truncated): {_reason(error)}") from None
    _check_limits(info, limits)
    return info


def _header(container) -> VideoInfo:
    video = container.streams.video
    audio = len(container.streams.audio)
    if not video:
        kinds = "audio only" if audio else "no video stream"
        raise VideoRejected(f"the file has no video stream ({kinds}); send a file with a video track")
    stream = video[0]
    codec = stream.codec_context.name if stream.codec_context else "unknown"
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if container.duration is not None:
        duration = container.duration / 1_000_000
    elif stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = 0.0
    width, height = stream.codec_context.width, stream.codec_context.height
    info = VideoInfo(container.format.name, codec, width, height, fps, duration, int(stream.frames or 0), audio)
    if codec not in SUPPORTED_CODECS:
        raise VideoRejected(f"video codec {codec!r} is not supported; allowed: {', '.join(sorted(SUPPORTED_CODECS))}")
    if width <= 0 or height <= 0 or fps <= 0:
        raise VideoRejected(f"the header gives no usable size or frame rate ({width}x{height} at {fps:g} fps)")
    return info


def _check_limits(info: VideoInfo, limits: VideoLimits) -> None:
    pixels = info.width * info.height
    if pixels > limits.max_pixels:
        raise VideoRejected(
            f"resolution {info.width}x{info.height} ({pixels:,} pixels) is too large; "
            f"allowed: at most {limits.max_pixels:,} pixels per frame (max_video_pixels)"
        )
    if info.duration_s > limits.max_duration_s:
        raise VideoRejected(
            f"duration {info.duration_s:.1f} s is too long; allowed: at most {limits.max_duration_s:g} s "
            "(max_duration_s); split the file"
        )


def choose_decoder(codec: str, device: str) -> str:
    """'dali-mixed', 'dali-cpu' or 'pyav' (see the module docstring for why)."""
    if device == "gpu" and codec in NVDEC_CODECS:
        return "dali-mixed"
    if codec in DALI_CPU_CODECS:
        return "dali-cpu"
    return "pyav"


class FrameSampler:
    """The shared part: proxy RGB frames in, in order -> 48x27 frames + sampled candidates."""

    def __init__(self, fps: float, sampling: Sampling, max_frames: int):
        self.fps = fps
        self.sampling = sampling
        self.max_frames = max_frames
        self._boundary: list[np.ndarray] = []
        self.samples: list[tuple[int, np.ndarray]] = []
        self._next_sample_s = 0.0

    def add(self, frame: np.ndarray) -> None:
        import cv2

        index = len(self._boundary)
        if index >= self.max_frames:
            raise VideoRejected(
                f"the file holds more than {self.max_frames:,} frames, more than its header's duration allows "
                "(max_duration_s); split the file"
            )
        small = cv2.resize(frame, (BOUNDARY_WIDTH, BOUNDARY_HEIGHT), interpolation=cv2.INTER_AREA)
        self._boundary.append(small)
        if index / self.fps >= self._next_sample_s:
            self.samples.append((index, np.ascontiguousarray(frame)))
            self._next_sample_s += 1.0 / self.sampling.sample_fps

    def result(self, decoder: str) -> Frames:
        if not self._boundary:
            raise VideoRejected("no frame could be decoded (corrupt or truncated video)")
        return Frames(self.fps, decoder, np.stack(self._boundary), self.samples)


def decode(data: bytes, info: VideoInfo, sampling: Sampling, limits: VideoLimits, device: str = "cpu") -> Frames:
    """Decode with the decoder `choose_decoder` picks; a file that yields clearly fewer
    frames than its header promises is refused as truncated."""
    decoder = choose_decoder(info.codec, device)
    max_frames = int(limits.max_duration_s * info.fps * 1.05) + 1
    sampler = FrameSampler(info.fps, sampling, max_frames)
    proxy = sampling.proxy_size(info.width, info.height)
    if decoder == "pyav":
        _decode_pyav(data, proxy, sampler)
    else:
        _decode_dali(data, proxy, sampler, "mixed" if decoder == "dali-mixed" else "cpu")
    frames = sampler.result(decoder)
    expected = info.expected_frames
    if expected and frames.count < 0.9 * expected - 1:
        raise VideoRejected(
            f"truncated: decoded {frames.count} of the {expected} frames its header announces "
            f"({frames.count / info.fps:.1f} of {expected / info.fps:.1f} s)"
        )
    return frames


def _decode_pyav(data: bytes, proxy: tuple[int, int], sampler: FrameSampler) -> None:
    import av

    width, height = proxy
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame and slice threads inside libavcodec
            for frame in container.decode(stream):
                rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
                sampler.add(rgb.to_ndarray())
    except av.FFmpegError as error:
        raise VideoRejected(
            f"corrupt video: decoding stopped after {len(sampler._boundary)} frames: {_reason(error)}"
        ) from None


# One built pipeline per device, reused across requests (building one takes ~100 ms).
_DALI_PIPELINES: dict[str, object] = {}


def _dali_pipeline(device: str):
    if device not in _DALI_PIPELINES:
        from nvidia.dali import fn, pipeline_def, types

        @pipeline_def(
            batch_size=1,
            num_threads=2,
            device_id=0 if device == "mixed" else None,
            exec_dynamic=True,
            prefetch_queue_depth=1,  # per-run arguments (start frame, size) need it
        )
        def video_pipeline():
            encoded = fn.external_source(name="video", dtype=types.UINT8, ndim=1)
            start = fn.external_source(name="start", dtype=types.INT32, ndim=0)
            size = fn.external_source(name="size", dtype=types.FLOAT, ndim=1)
            frames = fn.decoders.video(
                encoded, device=device, start_frame=start, sequence_length=DALI_CHUNK_FRAMES, pad_mode="none"
            )
            return fn.resize(frames, size=size, interp_type=types.INTERP_LINEAR, antialias=True)

        pipe = video_pipeline()
        pipe.build()
        _DALI_PIPELINES[device] = pipe
    return _DALI_PIPELINES[device]


def _decode_dali(data: bytes, proxy: tuple[int, int], sampler: FrameSampler, device: str) -> None:
    """DALI decodes DALI_CHUNK_FRAMES frames per run (pad_mode "none": the last run is
    shorter), resized to the proxy inside the pipeline."""
    encoded = np.frombuffer(data, np.uint8)
    size = np.array([proxy[1], proxy[0]], np.float32)  # DALI sizes are (height, width)
    start = 0
    while True:
        pipe = _dali_pipeline(device)
        try:
            (output,) = pipe.run(video=[encoded], start=[np.array(start, np.int32)], size=[size])
        except Exception as error:  # noqa: BLE001 - DALI raises RuntimeError for any bad stream
            _DALI_PIPELINES.pop(device, None)  # a failed run can leave the pipeline unusable
            if start > 0:
                break  # past the last frame (stream shorter than its index): the count check judges
            raise VideoRejected(f"corrupt video: DALI could not decode it: {_reason(error)}") from None
        chunk = np.asarray(output.as_cpu()[0] if device == "mixed" else output[0])
        for frame in chunk:
            sampler.add(frame)
        if len(chunk) < DALI_CHUNK_FRAMES:
            break
        start += DALI_CHUNK_FRAMES


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[-1] if text else type(error).__name__)[:300]
