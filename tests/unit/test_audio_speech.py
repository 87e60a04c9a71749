"""espeak-ng speech helpers: durations, containers and the reference decoder."""

from __future__ import annotations

import pytest

from marquee.transcription import speech

pytestmark = pytest.mark.skipif(not speech.espeak_available(), reason="espeak-ng is not installed")


def test_sentence_is_synthesized_at_the_requested_rate():
    native = speech.synthesize(speech.SENTENCES[0])
    at_16k = speech.synthesize(speech.SENTENCES[0], rate=16_000)
    assert native.sample_rate == 22_050 and at_16k.sample_rate == 16_000
    assert 1.0 < native.duration_s < 6.0
    assert at_16k.duration_s == pytest.approx(native.duration_s, abs=0.01)
    assert speech.synthesize(speech.SENTENCES[0]).wav == native.wav  # deterministic


def test_long_clip_is_over_a_minute_with_its_text():
    clip = speech.long_clip()
    assert clip.duration_s > 60
    assert clip.text.startswith(speech.SENTENCES[0]) and speech.SENTENCES[-1] in clip.text


@pytest.mark.parametrize("container", ["wav", "flac", "ogg"])
def test_transcoded_clip_keeps_its_length(container):
    clip = speech.synthesize(speech.SENTENCES[2])
    data = speech.transcode(clip.wav, container, 44_100)
    samples = speech.decode_16k(data)
    assert samples.size / 16_000 == pytest.approx(clip.duration_s, abs=0.01)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="container='mp3'; allowed: wav, flac, ogg"):
        speech.transcode(b"", "mp3")
    with pytest.raises(ValueError, match="text is empty"):
        speech.synthesize("  ")
