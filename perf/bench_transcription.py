"""Benchmark: Marquee's served `transcribe` (FP32, INT8) vs faster-whisper (int8), same
weights (Whisper tiny.en), same espeak-ng corpus, same machine, one run.

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
Each system is warmed up on one clip first; systems alternate over `--rounds` rounds and
the median round is reported (all rounds are kept). Writes perf/reports/transcription.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPORTS = Path(__file__).resolve().parent / "reports"
ROUTES = ("transcribe", "transcribe_int8")


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


def bench_served(url: str, route: str, clips: list, per_request: int, concurrency: int) -> dict:
    import tritonclient.grpc as grpcclient

    def call(batch: list) -> list[dict]:
        with grpcclient.InferenceServerClient(url) as client:
            items = np.array([clip.wav for clip in batch], dtype=np.object_)
            tensor = grpcclient.InferInput("audio", [len(items)], "BYTES")
            tensor.set_data_from_numpy(items)
            result = client.infer(route, [tensor], client_timeout=3600)
            return [json.loads(x) for x in result.as_numpy("result")]

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
    return _figures(clips, texts, wall, {"clips_per_request": per_request, "concurrency": concurrency})


class FasterWhisper:
    """faster-whisper loaded once; `bench(clips)` transcribes them one after another."""

    def __init__(self, threads: int):
        from faster_whisper import WhisperModel

        from export.whisper.pipeline import default_source

        self.threads = threads
        self.model = WhisperModel(str(default_source()), device="cpu", compute_type="int8", cpu_threads=threads)
        self.options = dict(beam_size=1, temperature=0, vad_filter=False, condition_on_previous_text=False)

    def _text(self, path: Path) -> str:
        return " ".join(s.text.strip() for s in self.model.transcribe(str(path), **self.options)[0])

    def bench(self, clips: list) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, clip in enumerate(clips):
                paths.append(Path(tmp) / f"clip{i}.wav")
                paths[-1].write_bytes(clip.wav)
            self._text(paths[0])  # warm-up
            started = time.perf_counter()
            texts = [self._text(path) for path in paths]
            wall = time.perf_counter() - started
        return _figures(clips, texts, wall, {"compute_type": "int8", "cpu_threads": self.threads, "beam_size": 1})


def _median_round(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["audio_s_per_wall_s"])
    median = dict(ordered[len(ordered) // 2])
    median["rounds_audio_s_per_wall_s"] = [r["audio_s_per_wall_s"] for r in runs]
    return median


def _figures(clips: list, texts: list[str], wall: float, settings: dict) -> dict:
    audio = sum(clip.duration_s for clip in clips)
    return {
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 2),
        "audio_s_per_wall_s": round(audio / wall, 2),
        "wer": round(corpus_wer([c.text for c in clips], texts), 4),
        "settings": settings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--clips-per-request", type=int, default=4)
    parser.add_argument("--sentences-per-clip", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="faster-whisper cpu_threads (the host's cores)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per system (median reported)")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the continuous file")
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
                for route in ROUTES:
                    figures = bench_served(server.grpc_url, route, clips, args.clips_per_request, args.concurrency)
                    rounds[name].setdefault(f"marquee_{route}", []).append(figures)
                    print(round_index, name, route, figures)
                figures = runtime.bench(clips)
                rounds[name].setdefault("faster_whisper_int8", []).append(figures)
                print(round_index, name, "faster-whisper int8", figures)
    results = {
        name: {system: _median_round(runs) for system, runs in systems.items()} for name, systems in rounds.items()
    }
    report = {
        "benchmark": "transcription throughput and WER, Whisper tiny.en, espeak-ng speech",
        "machine": machine_info(),
        "corpora": {
            name: {"clips": len(clips), "audio_s": round(sum(c.duration_s for c in clips), 2)}
            for name, clips in corpora.items()
        },
        "results": results,
        "speedup_vs_faster_whisper_int8": {
            corpus_name: {
                name: round(r["audio_s_per_wall_s"] / figures["faster_whisper_int8"]["audio_s_per_wall_s"], 3)
                for name, r in figures.items()
            }
            for corpus_name, figures in results.items()
        },
    }
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "transcription.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["speedup_vs_faster_whisper_int8"], indent=2), f"\nwrote {path}")


if __name__ == "__main__":
    main()
