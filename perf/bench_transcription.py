"""Benchmark: Marquee's served `transcribe_int8` (and with --fp32 `transcribe`; batched and sequential modes) vs
faster-whisper (int8; sequential `WhisperModel.transcribe` and `BatchedInferencePipeline`),
same weights (Whisper tiny.en), same espeak-ng corpus, same machine, one run; then the
peak memory of one 2-hour file.

    .venv/bin/python -m perf.bench_transcription [--concurrency 2] [--clips-per-request 4]

Figure of merit: audio seconds per wall second over the whole corpus, and corpus WER
(marquee.transcription.wer: errors summed over clips / reference words summed).
- corpus: the fixed sentences of marquee/transcription/speech.py, read in groups of
  `--sentences-per-clip` (about 15 s clips), plus one clip over 60 s (three windows);
- served: clips sent as WAV bytes over gRPC, `--clips-per-request` per request,
  `--concurrency` requests in flight; includes decoding + resampling + log-mel (DALI),
  BLS hops and JSON. Thread budget: the encoder runs 2 intra-op threads, each of the
  route's two instances decodes with 1 thread, all on the same 2 cores;
- faster-whisper: `WhisperModel(ct2 dir, compute_type="int8", cpu_threads=2)`, clips one
  after another (its usual use), beam 1, temperature 0 (no fallback), no VAD,
  condition_on_previous_text=False, timestamps on: the same decoding the route does.
Two corpora: `clips` (the sentence groups + the long clip: many short files, where the
route batches clips) and `long_file` (the long clip repeated to `--long-minutes`: one
continuous file, windows strictly one after another, batch 1 everywhere).
- faster-whisper batched: `BatchedInferencePipeline(model).transcribe(batch_size=8)`, its
  default Silero VAD chunking (the same VAD model the route serves), beam 1, same model.
Each system is warmed up on one clip first; systems alternate over `--rounds` rounds and
the median round is reported (all rounds are kept). `uptime`'s load is recorded before
and after every measurement.

Memory (`--memory-hours`, default 2): one file of that length (the long clip repeated,
sent as FLAC) through the default route, on a fresh server; the peak resident set
(VmHWM) of each tritonserver process (the server and each Python model's stub) is read
from /proc afterwards. The target is the route's process under 1.5 GB.
Writes perf/reports/transcription.json and transcription.png.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPORTS = Path(__file__).resolve().parent / "reports"
# (name in the report, route, mode). INT8 by default: the comparison the targets name
# (faster-whisper int8, same weights); --fp32 adds the FP32 route.
SERVED_INT8 = (
    ("marquee_int8_batched", "transcribe_int8", "batched"),
    ("marquee_int8_sequential", "transcribe_int8", "sequential"),
)
SERVED_FP32 = (
    ("marquee_fp32_batched", "transcribe", "batched"),
    ("marquee_fp32_sequential", "transcribe", "sequential"),
)
FASTER_WHISPER = ("faster_whisper_int8_sequential", "faster_whisper_int8_batched")
BATCH_SIZE = 8


def corpus(sentences_per_clip: int) -> list:
    from marquee.transcription import speech

    groups = [speech.SENTENCES[i : i + sentences_per_clip] for i in range(0, len(speech.SENTENCES), sentences_per_clip)]
    return [speech.synthesize(" ".join(group)) for group in groups] + [speech.long_clip(min_seconds=60)]


def long_file(minutes: float):
    """The long clip repeated into one continuous file of at least `minutes`."""
    import io
    import wave

    from marquee.transcription import speech

    clip = speech.long_clip(min_seconds=60, rate=16_000)
    with wave.open(io.BytesIO(clip.wav)) as reader:
        samples = reader.readframes(reader.getnframes())
    repeats = int(minutes * 60 // clip.duration_s) + 1
    return speech.Clip(wav=speech.pcm16_wav(np.frombuffer(samples * repeats, np.int16) / 32768.0, 16_000),
                       text=" ".join([clip.text] * repeats), sample_rate=16_000)  # fmt: skip


def prepare_repository() -> Path:
    from export.audio.pipeline import export_audio_features
    from export.vad import export_silero_vad
    from export.whisper.pipeline import export_whisper
    from marquee import render
    from marquee.paths import cache_dir
    from marquee.specs.audio import AUDIO_MODELS
    from marquee.specs.vad import VAD_MODELS
    from marquee.specs.whisper import WHISPER_MODELS

    repository = cache_dir() / "repositories" / "transcription"
    render.write([*AUDIO_MODELS, *VAD_MODELS, *WHISPER_MODELS], repository)
    export_audio_features(repository)
    export_silero_vad(repository)
    export_whisper(repository)
    return repository


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    from marquee.transcription.wer import word_error_rate

    results = [word_error_rate(r, h) for r, h in zip(references, hypotheses, strict=True)]
    return sum(r.errors for r in results) / max(1, sum(r.reference_words for r in results))


def repeated_clip_wer(segments: list[dict], unit_text: str, unit_s: float, audio_s: float) -> float:
    """WER of a file made of one clip repeated (long_file), repetition by repetition: each
    segment counts towards the repetition its midpoint falls in, and only whole
    repetitions are scored. Linear in the file's length, where one alignment of a 2-hour
    transcript (20k words each side) would take hours in Python."""
    from marquee.transcription.wer import word_error_rate

    errors = words = 0
    for index in range(int(audio_s // unit_s)):
        low, high = index * unit_s, (index + 1) * unit_s
        text = " ".join(s["text"] for s in segments if low <= (s["start"] + s["end"]) / 2 < high)
        result = word_error_rate(unit_text, text)
        errors, words = errors + result.errors, words + result.reference_words
    return errors / max(1, words)


def served_call(url: str, route: str, mode: str, files: list[bytes], parameters: dict | None = None) -> list[dict]:
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(url) as client:
        items = np.array(files, dtype=np.object_)
        tensor = grpcclient.InferInput("audio", [len(items)], "BYTES")
        tensor.set_data_from_numpy(items)
        options = {"mode": mode, **(parameters or {})}
        result = client.infer(route, [tensor], client_timeout=4 * 3600, parameters=options)
        return [json.loads(x) for x in result.as_numpy("result")]


def bench_served(url: str, route: str, mode: str, clips: list, per_request: int, concurrency: int) -> dict:
    def call(batch: list) -> list[dict]:
        return served_call(url, route, mode, [clip.wav for clip in batch])

    call(clips[:1])  # warm-up
    batches = [clips[i : i + per_request] for i in range(0, len(clips), per_request)]
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = [item for batch in pool.map(call, batches) for item in batch]
    wall = time.perf_counter() - started
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        raise RuntimeError(f"{route}: {len(errors)} clips failed, first: {errors[0]}")
    texts = [" ".join(s["text"] for s in a["segments"]) for a in answers]
    return _figures(clips, texts, wall, {"mode": mode, "clips_per_request": per_request, "concurrency": concurrency})


class FasterWhisper:
    """faster-whisper loaded once; `bench(clips, batched)` transcribes them one after another,
    sequentially (`WhisperModel.transcribe`) or with `BatchedInferencePipeline`."""

    def __init__(self, threads: int):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from export.whisper.pipeline import default_source

        self.threads = threads
        self.model = WhisperModel(str(default_source()), device="cpu", compute_type="int8", cpu_threads=threads)
        self.pipeline = BatchedInferencePipeline(self.model)
        self.options = dict(beam_size=1, temperature=0, condition_on_previous_text=False)
        self.batched = False

    def _text(self, path: Path) -> str:
        if self.batched:
            segments = self.pipeline.transcribe(str(path), batch_size=BATCH_SIZE, **self.options)[0]
        else:
            segments = self.model.transcribe(str(path), vad_filter=False, **self.options)[0]
        return " ".join(s.text.strip() for s in segments)

    def bench(self, clips: list, batched: bool) -> dict:
        self.batched = batched
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, clip in enumerate(clips):
                paths.append(Path(tmp) / f"clip{i}.wav")
                paths[-1].write_bytes(clip.wav)
            self._text(paths[0])  # warm-up
            started = time.perf_counter()
            texts = [self._text(path) for path in paths]
            wall = time.perf_counter() - started
        settings = {"compute_type": "int8", "cpu_threads": self.threads, "beam_size": 1}
        return _figures(clips, texts, wall, {**settings, "batch_size": BATCH_SIZE if batched else 1})


def _median_round(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["audio_s_per_wall_s"])
    median = dict(ordered[len(ordered) // 2])
    median["rounds_audio_s_per_wall_s"] = [r["audio_s_per_wall_s"] for r in runs]
    return median


def _figures(clips: list, texts: list[str], wall: float, settings: dict) -> dict:
    audio = sum(clip.duration_s for clip in clips)
    return {
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 2),
        "audio_s_per_wall_s": round(audio / wall, 2),
        "wer": round(corpus_wer([c.text for c in clips], texts), 4),
        "settings": settings,
    }


def process_peaks_mb(server_pid: int) -> dict[str, float]:
    """Peak resident memory (VmHWM, MB) of tritonserver and each of its child processes,
    named by the model whose stub it is."""
    peaks = {}
    for pid in [server_pid, *_children(server_pid)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        name = "tritonserver" if pid == server_pid else _stub_model(command) or f"pid {pid}"
        peaks[name if name not in peaks else f"{name} ({pid})"] = round(hwm / 1024, 1)
    return peaks


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in map(int, children):
            out += [child, *_children(child)]
    return out


def _stub_model(command: list[bytes]) -> str | None:
    """The Python backend stub's first argument is the model file in its version folder
    (<repository>/<model>/<version>/model.py): "<model>/<version>"."""
    for part in command[1:2]:
        path = Path(part.decode(errors="replace"))
        return f"{path.parent.parent.name}/{path.parent.name}" if path.name else None
    return None


def measure_memory(hours: float, mode: str, route: str = "transcribe_int8") -> dict:
    """A fresh server; one file of `hours` through `route`; peak memory per process."""
    from marquee.server import TritonServer, free_ports
    from marquee.transcription import speech

    clip = long_file(hours * 60)
    # Cut to just under `hours`: the route refuses clips over its limit (2 h by default).
    import io
    import wave

    with wave.open(io.BytesIO(clip.wav)) as reader:
        frames = reader.readframes(min(reader.getnframes(), int((hours * 3600 - 1) * reader.getframerate())))
    samples = np.frombuffer(frames, np.int16) / 32768.0
    clip = speech.Clip(wav=speech.pcm16_wav(samples, 16_000), text=clip.text, sample_rate=16_000)
    flac = speech.transcode(clip.wav, "flac")
    with TritonServer(prepare_repository(), free_ports()) as server:
        served_call(server.grpc_url, route, mode, [speech.synthesize("Warm up.").wav])
        before = process_peaks_mb(server.process.pid)
        started = time.perf_counter()
        (answer,) = served_call(server.grpc_url, route, mode, [flac])
        wall = time.perf_counter() - started
        after = process_peaks_mb(server.process.pid)
    if "error" in answer:
        raise RuntimeError(f"{hours} h file failed: {answer['error']}")
    unit = speech.long_clip(min_seconds=60, rate=16_000)
    route_peak = max(v for k, v in after.items() if k.startswith(f"{route}/"))
    return {
        "route": route,
        "mode": mode,
        "audio_s": round(clip.duration_s, 1),
        "flac_mb": round(len(flac) / 1e6, 1),
        "wall_s": round(wall, 1),
        "wer": round(repeated_clip_wer(answer["segments"], unit.text, unit.duration_s, clip.duration_s), 4),
        "wer_note": "per whole repetition of the long clip (repeated_clip_wer); the trimmed last one is not scored",
        "peak_mb_after_warm_up": before,
        "peak_mb": after,
        "route_peak_mb": route_peak,
        "target_route_peak_mb": 1536,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def plot(report: dict, path: Path) -> Path | None:
    from perf.plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, len(report["results"]), figsize=(12, 4.5))
    for ax, (corpus_name, systems) in zip(axes, report["results"].items(), strict=True):
        names = list(systems)
        speeds = [systems[n]["audio_s_per_wall_s"] for n in names]
        bars = ax.barh(names, speeds, color=["C0" if n.startswith("marquee") else "C1" for n in names])
        for bar, name in zip(bars, names, strict=True):
            ax.annotate(f" WER {systems[name]['wer']:.3f}", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        va="center", fontsize=8)  # fmt: skip
        ax.set_title(f"{corpus_name} ({report['corpora'][corpus_name]['audio_s']:.0f} s of audio)")
        ax.set_xlabel("audio seconds per wall second (higher is better)")
    machine = report["machine"]
    title = f"Whisper tiny.en on {machine['cpu']} x{machine['cores']}, load {machine['load_average'][0]}"
    return save(figure, path, title)


def memory_only() -> None:
    """`python -c 'from perf.bench_transcription import memory_only; memory_only()' HOURS`:
    only the peak-memory measurement, written to perf/reports/transcription_memory.json."""
    import sys

    hours = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    from perf.machine import machine_info

    report = {"machine": machine_info(), "memory": measure_memory(hours, "batched")}
    path = REPORTS / "transcription_memory.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["memory"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--clips-per-request", type=int, default=4)
    parser.add_argument("--sentences-per-clip", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="faster-whisper cpu_threads (the host's cores)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per system (median reported)")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the continuous file")
    parser.add_argument("--memory-hours", type=float, default=2.0, help="file length for peak memory (0: skip)")
    parser.add_argument("--fp32", action="store_true", help="also measure the FP32 route")
    args = parser.parse_args()

    from marquee.server import TritonServer, free_ports
    from perf.machine import machine_info

    corpora = {"clips": corpus(args.sentences_per_clip), "long_file": [long_file(args.long_minutes)]}
    repository = prepare_repository()
    rounds: dict[str, dict[str, list[dict]]] = {name: {} for name in corpora}
    runtime = FasterWhisper(args.threads)
    with TritonServer(repository, free_ports()) as server:
        # Systems alternate within each round, so load from other processes on a shared
        # host spreads over all of them; each figure is the median round.
        for round_index in range(args.rounds):
            for name, clips in corpora.items():
                for system, route, mode in SERVED_INT8 + (SERVED_FP32 if args.fp32 else ()):
                    per_request, concurrency = args.clips_per_request, args.concurrency
                    figures = bench_served(server.grpc_url, route, mode, clips, per_request, concurrency)
                    rounds[name].setdefault(system, []).append(figures)
                    print(round_index, name, system, figures, flush=True)
                for system, batched in zip(FASTER_WHISPER, (False, True), strict=True):
                    figures = runtime.bench(clips, batched)
                    rounds[name].setdefault(system, []).append(figures)
                    print(round_index, name, system, figures, flush=True)
    results = {
        name: {system: _median_round(runs) for system, runs in systems.items()} for name, systems in rounds.items()
    }
    report = {
        "benchmark": "transcription throughput and WER, Whisper tiny.en, espeak-ng speech",
        "load_average_end_of_throughput": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_info(),
        "corpora": {
            name: {"clips": len(clips), "audio_s": round(sum(c.duration_s for c in clips), 2)}
            for name, clips in corpora.items()
        },
        "results": results,
        "speedup": {
            baseline: {
                corpus_name: {
                    name: round(r["audio_s_per_wall_s"] / figures[baseline]["audio_s_per_wall_s"], 3)
                    for name, r in figures.items()
                }
                for corpus_name, figures in results.items()
            }
            for baseline in FASTER_WHISPER
        },
    }
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "transcription.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    if args.memory_hours > 0:
        report["memory"] = measure_memory(args.memory_hours, "batched")
        path.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, REPORTS / "transcription.png")
    print(json.dumps(report["speedup"], indent=2), json.dumps(report.get("memory"), indent=2), f"\nwrote {path}")


if __name__ == "__main__":
    main()
