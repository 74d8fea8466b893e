"""Utterance cutting with the real Silero VAD on spoken clips, without HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from whisper_service.audio import SAMPLE_RATE, pcm_s16le_to_float
from whisper_service.segmenter import Cut, UtteranceSegmenter

CHUNK = SAMPLE_RATE // 10  # 100 ms, like a browser's audio worklet


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def feed(segmenter: UtteranceSegmenter, samples: np.ndarray) -> list[Cut]:
    cuts: list[Cut] = []
    for start in range(0, len(samples), CHUNK):
        cuts.extend(segmenter.push(samples[start : start + CHUNK]))
    return cuts


def make() -> UtteranceSegmenter:
    return UtteranceSegmenter(silence_ms=600, partial_interval_ms=1000, max_seconds=25)


def test_silence_yields_nothing_and_keeps_little() -> None:
    segmenter = make()
    assert feed(segmenter, silence(5)) == []
    assert segmenter.flush() is None


def test_two_utterances_give_partials_then_one_final_each(clips: Path) -> None:
    speech_a = pcm_s16le_to_float((clips / "open.pcm").read_bytes())
    speech_b = pcm_s16le_to_float((clips / "weather.pcm").read_bytes())
    audio = np.concatenate([silence(0.5), speech_a, silence(1.5), speech_b, silence(1.5)])
    cuts = feed(make(), audio)
    finals = [c for c in cuts if c.final]
    assert [c.index for c in finals] == [0, 1]
    for final, speech in zip(finals, (speech_a, speech_b), strict=True):
        # the whole utterance and little more: speech plus padding, without the pauses
        assert len(speech) * 0.8 < len(final.samples) < len(speech) + SAMPLE_RATE
    first_final = next(i for i, c in enumerate(cuts) if c.final)
    assert any(not c.final and c.index == 0 for c in cuts[:first_final])


def test_flush_finishes_speech_without_trailing_silence(clips: Path) -> None:
    segmenter = make()
    speech = pcm_s16le_to_float((clips / "report.pcm").read_bytes())
    assert not [c for c in feed(segmenter, speech) if c.final]
    final = segmenter.flush()
    assert final is not None and final.final and final.index == 0
    assert len(final.samples) >= 0.8 * len(speech)


def test_long_speech_is_cut_at_the_limit(clips: Path) -> None:
    segmenter = UtteranceSegmenter(silence_ms=600, partial_interval_ms=1000, max_seconds=2)
    cuts = feed(segmenter, pcm_s16le_to_float((clips / "open.pcm").read_bytes()))
    finals = [c for c in cuts if c.final]
    assert finals, "speech longer than max_seconds must be cut without waiting for silence"
    assert all(len(c.samples) <= 2.3 * SAMPLE_RATE for c in finals)
