"""Benchmark: Whisper base (multilingual) served by Marquee (`transcribe_base_int8`,
batched mode) vs faster-whisper on the same CTranslate2 weights (int8, 2 threads, beam 1),
on espeak-ng speech in Spanish, French, German and Portuguese (four sentences each,
spoken alone and in pairs: 24 clips). One run, systems alternating per round.

    .venv/bin/python -m perf.bench_multilingual [--rounds 1]

Per language and system: language-ID accuracy (per clip, language not
given), WER of the transcription in the spoken language, and for the translate task the
word overlap (marquee.transcription.wer.word_overlap) of the English output with the
English source sentences the clips were written from. Also wall seconds per system.
espeak-ng's voices are robotic, far from Whisper's training audio: absolute figures are
low for both systems; the comparison is what the report is for.
Writes perf/reports/transcription_multilingual.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPORTS = Path(__file__).resolve().parent / "reports"
ROUTE = "transcribe_base_int8"

# English source sentences and their translations (written for this benchmark); clips
# read two sentences each.
ENGLISH = (
    "The weather today is sunny with a light breeze from the west.",
    "Please remember to bring your passport to the airport.",
    "The museum is open every day except Monday.",
    "The children built a sandcastle on the beach.",
)
TRANSLATIONS = {
    "es": (
        "El tiempo hoy es soleado con una brisa ligera del oeste.",
        "Por favor, recuerde traer su pasaporte al aeropuerto.",
        "El museo está abierto todos los días excepto el lunes.",
        "Los niños construyeron un castillo de arena en la playa.",
    ),
    "fr": (
        "Le temps aujourd'hui est ensoleillé avec une légère brise de l'ouest.",
        "N'oubliez pas d'apporter votre passeport à l'aéroport.",
        "Le musée est ouvert tous les jours sauf le lundi.",
        "Les enfants ont construit un château de sable sur la plage.",
    ),
    "de": (
        "Das Wetter ist heute sonnig mit einer leichten Brise aus dem Westen.",
        "Bitte denken Sie daran, Ihren Reisepass zum Flughafen mitzubringen.",
        "Das Museum ist jeden Tag außer Montag geöffnet.",
        "Die Kinder bauten eine Sandburg am Strand.",
    ),
    "pt": (
        "O tempo hoje está ensolarado com uma brisa leve do oeste.",
        "Por favor, lembre-se de levar o seu passaporte para o aeroporto.",
        "O museu está aberto todos os dias exceto segunda-feira.",
        "As crianças construíram um castelo de areia na praia.",
    ),
}
CORPUS = {language: list(zip(ENGLISH, spoken, strict=True)) for language, spoken in TRANSLATIONS.items()}
VOICES = {"es": "es", "fr": "fr-fr", "de": "de", "pt": "pt"}


def clips() -> list[dict]:
    """One clip per sentence and one per pair of sentences (6 per language): {language,
    text, english, wav, duration_s}. Single sentences (3-5 s) are where language ID is hardest."""
    from marquee.transcription import speech

    out = []
    for language, pairs in CORPUS.items():
        groups = [pairs[k : k + 1] for k in range(len(pairs))] + [pairs[k : k + 2] for k in range(0, len(pairs), 2)]
        for chosen in groups:
            text = " ".join(spoken for _, spoken in chosen)
            english = " ".join(source for source, _ in chosen)
            clip = speech.synthesize(text, voice=VOICES[language])
            item = {"language": language, "text": text, "english": english}
            out.append(item | {"wav": clip.wav, "duration_s": clip.duration_s})
    return out


def prepare_repository() -> Path:
    from export.whisper.cached import link_from_cache
    from marquee.paths import cache_dir
    from marquee.specs.whisper import BASE_VARIANT
    from perf.bench_transcription import prepare_repository as tiny_repository

    repository = tiny_repository()
    cache = cache_dir() / "test-cache" / "whisper-base" / "model_repository"  # shared with the tests
    link_from_cache(repository, cache, BASE_VARIANT)
    return repository


def served(url: str, items: list[dict], task: str) -> tuple[list[dict], float]:
    from perf.bench_transcription import served_call

    started = time.perf_counter()
    answers = []
    for item in items:  # one clip per request, as faster-whisper is called
        parameters = {"task": task}
        (answer,) = served_call(url, ROUTE, "batched", [item["wav"]], parameters)
        answers.append({"language": answer.get("language"), "text": _join(answer["segments"])})
    return answers, time.perf_counter() - started


def _join(segments) -> str:
    return " ".join((s["text"] if isinstance(s, dict) else s.text).strip() for s in segments)


class FasterWhisperBase:
    def __init__(self, threads: int):
        from faster_whisper import WhisperModel

        from export.whisper.sources import base

        self.model = WhisperModel(str(base()), device="cpu", compute_type="int8", cpu_threads=threads)

    def run(self, items: list[dict], task: str) -> tuple[list[dict], float]:
        answers = []
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for i, item in enumerate(items):
                path = Path(tmp) / f"{i}.wav"
                path.write_bytes(item["wav"])
                segments, info = self.model.transcribe(
                    str(path), task=task, beam_size=1, temperature=0, condition_on_previous_text=False
                )
                answers.append({"language": info.language, "text": _join(list(segments))})
        return answers, time.perf_counter() - started


def score(items: list[dict], transcribed: list[dict], translated: list[dict]) -> dict:
    from marquee.transcription.wer import word_error_rate, word_overlap

    per_language = {}
    for language in CORPUS:
        rows = [k for k, item in enumerate(items) if item["language"] == language]
        results = [word_error_rate(items[k]["text"], transcribed[k]["text"]) for k in rows]
        per_language[language] = {
            "language_id_accuracy": sum(transcribed[k]["language"] == language for k in rows) / len(rows),
            "identified_as": [transcribed[k]["language"] for k in rows],
            "wer": round(sum(r.errors for r in results) / sum(r.reference_words for r in results), 4),
            "translation_word_overlap": round(
                sum(word_overlap(items[k]["english"], translated[k]["text"]) for k in rows) / len(rows), 4
            ),
            "examples": {"transcribed": transcribed[rows[0]]["text"], "translated": translated[rows[0]]["text"]},
        }
    return per_language


def plot(report: dict, path: Path) -> Path | None:
    from perf.plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return None
    metrics = ("language_id_accuracy", "wer", "translation_word_overlap")
    figure, axes = plt.subplots(1, len(metrics), figsize=(12, 4))
    languages = list(CORPUS)
    for ax, metric in zip(axes, metrics, strict=True):
        for offset, system in enumerate(report["systems"]):
            values = [report["systems"][system]["per_language"][lang][metric] for lang in languages]
            ax.bar([i + offset * 0.4 for i in range(len(languages))], values, width=0.4, label=system)
        ax.set_xticks([i + 0.2 for i in range(len(languages))], languages)
        ax.set_title(metric)
    axes[0].legend(fontsize=8)
    return save(figure, path, f"Whisper base int8 on espeak-ng speech, load {report['machine']['load_average'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from marquee.server import TritonServer, free_ports
    from perf.machine import machine_info

    items = clips()
    repository = prepare_repository()
    runtime = FasterWhisperBase(args.threads)
    runs: dict[str, list] = {"marquee_transcribe_base_int8": [], "faster_whisper_base_int8": []}
    with TritonServer(repository, free_ports()) as server:
        for _ in range(args.rounds):
            for system in runs:
                if system.startswith("marquee"):
                    transcribed, wall_t = served(server.grpc_url, items, "transcribe")
                    translated, wall_x = served(server.grpc_url, items, "translate")
                else:
                    transcribed, wall_t = runtime.run(items, "transcribe")
                    translated, wall_x = runtime.run(items, "translate")
                figures = {
                    "wall_s_transcribe": round(wall_t, 2),
                    "wall_s_translate": round(wall_x, 2),
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "per_language": score(items, transcribed, translated),
                }
                runs[system].append(figures)
                print(system, json.dumps(figures)[:400], flush=True)
    report = {
        "benchmark": "multilingual: language ID, WER per language, translation word overlap; Whisper base int8",
        "machine": machine_info(),
        "clips": len(items),
        "audio_s": round(sum(item["duration_s"] for item in items), 1),
        "systems": {system: rounds[-1] for system, rounds in runs.items()},
        "all_rounds": runs,
    }
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "transcription_multilingual.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    plot(report, REPORTS / "transcription_multilingual.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
