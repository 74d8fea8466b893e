"""Cut a live 16 kHz sample stream into utterances with Silero VAD (shipped by faster-whisper).

The segmenter is plain, synchronous logic: feed it samples, it answers with the audio to
transcribe next, either a *partial* (the utterance so far, while the speaker is still talking)
or a *final* (the utterance ended: enough trailing silence, or it reached the length limit).

Example::

    segmenter = UtteranceSegmenter(silence_ms=600, partial_interval_ms=1000, max_seconds=25)
    for cut in segmenter.push(pcm_s16le_to_float(frame)):
        text = engine.transcribe(cut.samples).text
        send({"type": "final" if cut.final else "partial", "text": text})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from whisper_service.audio import SAMPLE_RATE, Samples

SpeechSpans = list[tuple[int, int]]
Detector = Callable[[Samples], SpeechSpans]

CHECK_STEP_SAMPLES = SAMPLE_RATE // 5  # run the VAD every 200 ms of new audio
PAD_SAMPLES = SAMPLE_RATE // 5  # keep 200 ms around speech so first/last words are whole
MIN_PARTIAL_SAMPLES = SAMPLE_RATE // 2


def silero_speech_spans(samples: Samples) -> SpeechSpans:
    """Speech regions as ``[(start_sample, end_sample), ...]`` by faster-whisper's Silero VAD."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=100, min_speech_duration_ms=200, speech_pad_ms=0)
    return [(int(s["start"]), int(s["end"])) for s in get_speech_timestamps(samples, options)]


@dataclass(frozen=True, eq=False)
class Cut:
    """Audio to transcribe: ``final`` ends utterance number ``index``, else it is a partial."""

    index: int
    samples: Samples
    final: bool


class UtteranceSegmenter:
    def __init__(
        self,
        *,
        silence_ms: int,
        partial_interval_ms: int,
        max_seconds: float,
        detect: Detector = silero_speech_spans,
    ) -> None:
        self.silence_samples = silence_ms * SAMPLE_RATE // 1000
        self.partial_interval = partial_interval_ms * SAMPLE_RATE // 1000
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self.detect = detect
        self.index = 0
        self._buffer: Samples = np.zeros(0, dtype=np.float32)
        self._unchecked = 0
        self._partial_mark = 0

    def push(self, samples: Samples) -> list[Cut]:
        """Add samples; return the cuts they complete (usually none, a partial or a final)."""
        self._buffer = np.concatenate([self._buffer, samples])
        self._unchecked += len(samples)
        if self._unchecked < CHECK_STEP_SAMPLES:
            return []
        self._unchecked = 0
        spans = self.detect(self._buffer)
        if not spans:
            self._buffer = self._buffer[-PAD_SAMPLES:]
            self._partial_mark = 0
            return []
        start = max(0, spans[0][0] - PAD_SAMPLES)
        end = spans[-1][1]
        if len(self._buffer) - end >= self.silence_samples:
            return [self._finish(start, end + PAD_SAMPLES, keep_from=end)]
        if len(self._buffer) >= self.max_samples:
            return [self._finish(start, len(self._buffer), keep_from=len(self._buffer))]
        speech_so_far = len(self._buffer) - start
        still_speaking = len(self._buffer) - end < PAD_SAMPLES
        # No partial once a pause has begun: the final may be due in a moment, and it would
        # have to wait for that partial to finish.
        if (
            still_speaking
            and speech_so_far >= MIN_PARTIAL_SAMPLES
            and len(self._buffer) - self._partial_mark >= self.partial_interval
        ):
            self._partial_mark = len(self._buffer)
            return [Cut(self.index, self._buffer[start:].copy(), final=False)]
        return []

    def flush(self) -> Cut | None:
        """End of stream: the pending speech as a final cut, or ``None`` if there is none."""
        spans = self.detect(self._buffer) if len(self._buffer) else []
        if not spans:
            self._buffer = self._buffer[:0]
            return None
        start = max(0, spans[0][0] - PAD_SAMPLES)
        return self._finish(start, len(self._buffer), keep_from=len(self._buffer))

    def _finish(self, start: int, end: int, *, keep_from: int) -> Cut:
        cut = Cut(self.index, self._buffer[start:end].copy(), final=True)
        self._buffer = self._buffer[keep_from:]
        self._partial_mark = 0
        self.index += 1
        return cut
