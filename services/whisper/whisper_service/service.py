"""What the routes call: decode, admit through the gate, transcribe in a worker thread.

Kept free of HTTP so it can be tested directly; each failure is a typed error the API maps to
one status code (see ``whisper_service.main``).

Example::

    speech = SpeechService(settings)
    transcript = await speech.transcribe_file(data, filename="note.webm", language="en")
"""

from __future__ import annotations

import asyncio
from functools import partial

from faster_whisper.tokenizer import _LANGUAGE_CODES

from whisper_service.audio import Samples, decode_upload
from whisper_service.core.config import Settings
from whisper_service.engine import Engine, Transcript
from whisper_service.gate import ConcurrencyGate

LANGUAGE_CODES = frozenset(_LANGUAGE_CODES)


class UploadTooLarge(ValueError):
    """The uploaded file is bigger than ``WHISPER_MAX_UPLOAD_BYTES``."""


class UnknownLanguage(ValueError):
    """The ``language`` field is not a Whisper language code."""


class SpeechService:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or Engine(settings)
        self.gate = ConcurrencyGate(settings.max_concurrency, settings.max_queue)

    def check_size(self, size: int, filename: str) -> None:
        if size > self.settings.max_upload_bytes:
            raise UploadTooLarge(
                f"{filename}: {size} bytes is over the limit of "
                f"{self.settings.max_upload_bytes} bytes (WHISPER_MAX_UPLOAD_BYTES)"
            )

    @staticmethod
    def check_language(language: str | None) -> str | None:
        """``""``/``None`` mean detect; else a code such as ``"en"``, or ``UnknownLanguage``."""
        if not language:
            return None
        code = language.strip().lower()
        if code not in LANGUAGE_CODES:
            raise UnknownLanguage(
                f"language: {language!r} is not a Whisper language code (e.g. 'en', 'de', 'fr'); "
                "leave it empty to detect the language"
            )
        return code

    async def transcribe_file(
        self,
        data: bytes,
        *,
        filename: str,
        language: str | None = None,
        prompt: str | None = None,
    ) -> Transcript:
        """Decode and transcribe an uploaded audio file, holding a gate slot for both steps."""
        self.check_size(len(data), filename)
        code = self.check_language(language)
        async with self.gate.slot():
            samples = await asyncio.to_thread(
                decode_upload,
                data,
                max_seconds=self.settings.max_duration_seconds,
                filename=filename,
            )
            return await asyncio.to_thread(
                partial(self.engine.transcribe, samples, language=code, prompt=prompt)
            )

    async def transcribe_samples(
        self, samples: Samples, *, language: str | None, beam_size: int | None = None
    ) -> Transcript:
        """Transcribe already decoded samples (a streamed utterance) through the gate."""
        async with self.gate.slot():
            return await asyncio.to_thread(
                partial(self.engine.transcribe, samples, language=language, beam_size=beam_size)
            )
