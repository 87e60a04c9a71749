"""Whisper base (multilingual) behind `transcribe_base_int8`, on a real tritonserver:
an espeak-ng Spanish clip is identified as Spanish, transcribed in Spanish, and
translated into English captions (WebVTT with a `Language:` header); bad options are
request errors that name what is allowed."""

from __future__ import annotations

import pytest

from marquee.transcription.wer import word_error_rate, word_overlap
from tests.fixtures_whisper import BASE_ROUTE, transcribe

pytestmark = pytest.mark.integration

SPANISH = "El tiempo hoy es soleado con una brisa ligera del oeste. Por favor, recuerde traer su pasaporte."
ENGLISH = "The weather today is sunny with a light breeze from the west. Please remember to bring your passport."
# Whisper base INT8 on espeak-ng's robotic Spanish voice, measured on this clip (2026-12-03):
# served WER 0.53 and translation overlap 0.39; faster-whisper on the same weights (int8,
# beam 1) WER 0.53 and overlap 0.44. Bounds with a margin that still fail on garbled or
# English-only output (tiny.en on this clip: no Spanish words at all).
MAX_SPANISH_WER = 0.65
MIN_TRANSLATION_OVERLAP = 0.3


@pytest.fixture(scope="module")
def spanish(espeak_clips):
    return espeak_clips.get(SPANISH, voice="es")


def _text(result: dict) -> str:
    return " ".join(segment["text"] for segment in result["segments"])


def test_spanish_is_identified_and_transcribed_in_spanish(transcribe_client, spanish):
    (result,) = transcribe(transcribe_client, [spanish.wav], model=BASE_ROUTE)
    print(result["language"], _text(result))
    assert result["language"] == "es" and result["task"] == "transcribe"
    assert all(segment["language"] == "es" for segment in result["segments"])
    assert word_error_rate(SPANISH, _text(result)).wer <= MAX_SPANISH_WER


def test_spanish_is_translated_into_english_captions(transcribe_client, spanish):
    from clients.transcription import Segment
    from marquee.transcription.subtitles import parse_vtt, to_vtt

    (result,) = transcribe(transcribe_client, [spanish.wav], model=BASE_ROUTE, task="translate", language="es")
    text = _text(result)
    print(text, word_overlap(ENGLISH, text))
    assert result["task"] == "translate" and result["language"] == "es"
    assert word_overlap(ENGLISH, text) >= MIN_TRANSLATION_OVERLAP
    assert word_overlap(SPANISH, text) < 0.3  # English words, not the Spanish ones
    vtt = to_vtt([Segment(s["start"], s["end"], s["text"]) for s in result["segments"]], language="en")
    assert vtt.startswith("WEBVTT\nLanguage: en\n") and parse_vtt(vtt)


def test_language_and_task_errors_name_what_is_allowed(transcribe_client, spanish):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="`language` is 'klingon'; allowed: auto or one of"):
        transcribe(transcribe_client, [spanish.wav], model=BASE_ROUTE, language="klingon")
    with pytest.raises(InferenceServerException, match="English-only model.*use transcribe_base"):
        transcribe(transcribe_client, [spanish.wav], model="transcribe", task="translate")
    (after,) = transcribe(transcribe_client, [spanish.wav], model=BASE_ROUTE, language="es")
    assert after["language"] == "es" and after["segments"]
