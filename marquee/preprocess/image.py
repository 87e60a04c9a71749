"""THE image preprocessing pipeline: encoded JPEG/PNG bytes -> detector and OCR inputs.

One definition, serialized twice at export:
- `model.dali` with GPU operators (nvJPEG "mixed" decoder, GPU resize) for Triton's
  native DALI backend on GPU hosts;
- `model.cpu.dali` with CPU operators, run by Marquee's Python-based `dali` backend
  (marquee/backends/dali) where no GPU or native DALI backend exists.

Conventions, read from the reference implementations:
- NudeNet pads the image at the bottom/right to a square with black, resizes the square
  to 320x320 (bilinear, no antialiasing), scales to [0, 1] and feeds channels in BGR
  order (its `cvtColor(RGBA2BGR)` followed by `blobFromImage(swapRB=True)` cancel out).
  Resizing the longer side to 320 and then padding bottom/right is the same geometry:
  a box in model pixels maps back to the original by `* max(height, width) / 320`.
- PP-OCR models take BGR scaled to [-1, 1]. The OCR branch letterboxes the same way to
  640x640 and also returns the letterboxed pixels, from which the route crops lines.
Decoding happens once per image; both branches share it.
"""

from __future__ import annotations

from dataclasses import dataclass

DETECTOR_SIZE = 320  # NudeNet 320n input side
OCR_SIZE = 640  # text detector input side; text lower than ~12 px after this scaling is not read
MAX_BATCH = 8

INPUT_NAME = "image"  # the external_source; also the Triton input name


@dataclass(frozen=True)
class PipelineOutput:
    name: str
    description: str


OUTPUTS = (
    PipelineOutput("detector_input", f"FP32 [3,{DETECTOR_SIZE},{DETECTOR_SIZE}] BGR in [0,1], letterboxed top-left"),
    PipelineOutput("ocr_input", f"FP32 [3,{OCR_SIZE},{OCR_SIZE}] BGR in [-1,1], letterboxed top-left"),
    PipelineOutput("ocr_pixels", f"UINT8 [{OCR_SIZE},{OCR_SIZE},3] BGR, the letterboxed OCR image"),
    PipelineOutput("original_size", "INT64 [2] height, width of the decoded image"),
)
DETECTOR_OUTPUTS = tuple(o for o in OUTPUTS if o.name in ("detector_input", "original_size"))


def image_preprocess_pipeline(device: str, batch_size: int = MAX_BATCH, num_threads: int = 1, ocr: bool = True):
    """Build (not run) the pipeline; `device` is "gpu" (mixed decoder) or "cpu".

    `ocr=False` leaves out the OCR branch (DETECTOR_OUTPUTS only): for routes with OCR
    off, where its 640-pixel antialiased resize and 6 MB of outputs cost 60% of the
    pipeline's CPU time (24 ms against 9 ms per 640x480 JPEG on one thread, 2026-12-03).

    Both variants are built with `device_id=None`: serialization then works on hosts
    without CUDA, and the native DALI backend picks the instance's GPU when it loads.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"image_preprocess_pipeline: device={device!r}; allowed: 'cpu', 'gpu'")
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=batch_size, num_threads=num_threads, device_id=None, prefetch_queue_depth=1)
    with pipe:
        encoded = fn.external_source(name=INPUT_NAME, dtype=types.UINT8, ndim=1)
        decoded = fn.decoders.image(encoded, device="mixed" if device == "gpu" else "cpu", output_type=types.BGR)
        # Read from the header, so the size is known on the CPU even when decoding on the GPU.
        original_size = fn.cast(fn.peek_image_shape(encoded)[0:2], dtype=types.INT64)

        # cv2.resize(INTER_LINEAR) does not antialias; neither may we, to match NudeNet.
        small = fn.resize(decoded, resize_longer=DETECTOR_SIZE, interp_type=types.INTERP_LINEAR, antialias=False)
        detector_input = _letterbox(fn, types, small, DETECTOR_SIZE, mean=0.0, std=255.0, fill=0.0)

        if not ocr:
            pipe.set_outputs(detector_input, original_size)
            return pipe
        # Antialiasing keeps thin strokes of text legible when a large image shrinks.
        large = fn.resize(decoded, resize_longer=OCR_SIZE, interp_type=types.INTERP_LINEAR)
        ocr_input = _letterbox(fn, types, large, OCR_SIZE, mean=127.5, std=127.5, fill=-1.0)  # -1 = black
        ocr_pixels = fn.crop(
            large, crop=(OCR_SIZE, OCR_SIZE), crop_pos_x=0.0, crop_pos_y=0.0, out_of_bounds_policy="pad", fill_values=0
        )
        pipe.set_outputs(detector_input, ocr_input, ocr_pixels, original_size)
    return pipe


def _letterbox(fn, types, image, side: int, mean: float, std: float, fill: float):
    """Pad bottom/right to side x side (the fill is in normalised units), normalise, HWC -> CHW."""
    return fn.crop_mirror_normalize(
        image,
        crop=(side, side),
        crop_pos_x=0.0,
        crop_pos_y=0.0,
        out_of_bounds_policy="pad",
        fill_values=fill,
        mean=mean,
        std=std,
        output_layout="CHW",
        dtype=types.FLOAT,
    )


def serialize(device: str, ocr: bool = True) -> bytes:
    return image_preprocess_pipeline(device, ocr=ocr).serialize()
