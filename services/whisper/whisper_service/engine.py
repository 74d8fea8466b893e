"""The speech-to-text engine: one faster-whisper model, loaded once, shared by every request.

Loading never touches the network: the model directory must exist and hold a CTranslate2
Whisper model, ``local_files_only`` is set, and the Hugging Face hub is switched offline
before faster-whisper is imported.

Example::

    engine = Engine(Settings())
    engine.load()
    result = engine.transcribe(samples, language="en")
    print(result.text)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from whisper_service.audio import SAMPLE_RATE, Samples
from whisper_service.core.config import Settings
from whisper_service.model import EMBEDDED_MODEL_NAME, EmbeddedModelError, assemble

os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on; CTranslate2's own default (4) oversubscribes small hosts."""
    return len(os.sched_getaffinity(0)) or 1


class ModelLoadError(RuntimeError):
    """The configured model directory is missing or does not hold a loadable model."""


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...]


class Engine:
    """Owns the model; ``transcribe`` is thread-safe and blocking (call it from a worker thread)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_dir: Path = settings.resolved_model_dir
        self.load_seconds: float | None = None
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def source(self) -> str:
        """Where the model comes from, for ``/api/whisper/models``."""
        if self.settings.uses_embedded_model:
            return f"embedded: {EMBEDDED_MODEL_NAME}"
        return "volume: WHISPER_MODEL_DIR"

    def load(self) -> None:
        """Load the model once; raise ``ModelLoadError`` naming the directory on failure."""
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def _load(self) -> WhisperModel:
        started = time.perf_counter()
        model_dir = self.model_dir
        if self.settings.uses_embedded_model:
            try:
                model_dir = assemble(model_dir)
            except (EmbeddedModelError, OSError) as exc:
                raise ModelLoadError(f"embedded model at {model_dir}: {exc}") from exc
        elif not model_dir.is_dir():
            raise ModelLoadError(
                f"model directory {model_dir} does not exist; set WHISPER_MODEL_DIR to a "
                "CTranslate2 Whisper model directory (or unset it for the embedded model)"
            )
        elif not (model_dir / "model.bin").is_file():
            raise ModelLoadError(
                f"model directory {model_dir} has no model.bin; it must hold a Whisper model "
                "converted for CTranslate2 (ct2-transformers-converter)"
            )
        from faster_whisper import WhisperModel

        try:
            model = WhisperModel(
                str(model_dir),
                device=self.settings.device,
                compute_type=self.settings.compute_type,
                cpu_threads=self.settings.cpu_threads or available_cpus(),
                num_workers=self.settings.max_concurrency,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(f"model directory {model_dir} does not load: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s from %s in %.2f s", self.source, model_dir, self.load_seconds)
        return model

    def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        prompt: str | None = None,
        beam_size: int | None = None,
        vad_filter: bool = False,
    ) -> Transcript:
        """Transcribe 16 kHz mono samples; segments are consumed here, inside the worker thread."""
        self.load()
        assert self._model is not None
        segments, info = self._model.transcribe(
            samples,
            language=language or None,
            initial_prompt=prompt or None,
            beam_size=beam_size or self.settings.beam_size,
            vad_filter=vad_filter,
            condition_on_previous_text=False,
        )
        parts = tuple(
            Segment(start=round(s.start, 2), end=round(s.end, 2), text=s.text.strip())
            for s in segments
        )
        return Transcript(
            text=" ".join(p.text for p in parts if p.text).strip(),
            language=info.language,
            duration=round(len(samples) / SAMPLE_RATE, 3),
            segments=parts,
        )
