"""File transcription: ``POST /api/whisper/transcribe`` (multipart field ``file``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, UploadFile

from whisper_service.api.deps import SpeechDep
from whisper_service.models import ErrorPublic, SegmentPublic, TranscriptionPublic

router = APIRouter(prefix="/api/whisper")

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorPublic} for code in (400, 413, 415, 422, 503)
}


@router.post("/transcribe", response_model=TranscriptionPublic, responses=ERRORS)
async def transcribe(
    speech: SpeechDep,
    file: UploadFile,
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
) -> TranscriptionPublic:
    """Transcribe an audio file (wav, webm/opus, ogg, mp3, flac); ``language`` skips detection."""
    filename = file.filename or "file"
    speech.check_size(file.size or 0, filename)
    data = await file.read()
    transcript = await speech.transcribe_file(
        data, filename=filename, language=language, prompt=prompt
    )
    return TranscriptionPublic(
        text=transcript.text,
        language=transcript.language,
        duration=transcript.duration,
        segments=[
            SegmentPublic(start=s.start, end=s.end, text=s.text) for s in transcript.segments
        ],
    )
