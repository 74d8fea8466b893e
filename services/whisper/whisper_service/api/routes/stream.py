"""Live transcription: ``WS /api/whisper/stream`` (16 kHz mono s16le PCM in, JSON results out)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket

from whisper_service.api.deps import SpeechDep
from whisper_service.service import UnknownLanguage
from whisper_service.streaming import StreamSession

router = APIRouter(prefix="/api/whisper")


def origin_allowed(websocket: WebSocket, allowlist: frozenset[str]) -> bool:
    """Browsers always send ``Origin``: accept same-host pages and the configured origins.

    Example: a page from ``https://ai.example.org`` may connect to ``wss://ai.example.org/...``.
    """
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser; nginx auth still guards the route
    if origin.rstrip("/") in allowlist:
        return True
    hosts = {websocket.headers.get("host"), websocket.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None}


@router.websocket("/stream")
async def stream(websocket: WebSocket, speech: SpeechDep, language: str | None = None) -> None:
    """Partial results while speaking, a final one per utterance (Silero VAD cuts them)."""
    if not origin_allowed(websocket, speech.settings.origin_allowlist):
        await websocket.close(code=1008, reason="origin not allowed (WHISPER_ALLOWED_ORIGINS)")
        return
    try:
        code = speech.check_language(language)
    except UnknownLanguage as exc:
        await websocket.close(code=1008, reason=str(exc)[:120])
        return
    await websocket.accept()
    await StreamSession(websocket, speech, code).run()
