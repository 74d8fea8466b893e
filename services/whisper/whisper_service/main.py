"""The FastAPI application: routes, the body-size guard, and error -> status mapping.

Example::

    app = create_app(Settings(model_dir=Path("/models/whisper-small")))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from whisper_service import __version__
from whisper_service.api.main import api_router
from whisper_service.audio import AudioTooLong, EmptyAudio, NotAudio
from whisper_service.core.config import Settings
from whisper_service.engine import ModelLoadError
from whisper_service.gate import ServerBusy
from whisper_service.limits import BodySizeLimit
from whisper_service.service import SpeechService, UnknownLanguage, UploadTooLarge

log = logging.getLogger(__name__)

MULTIPART_ENVELOPE_BYTES = 64 * 1024

STATUS_BY_ERROR: dict[type[Exception], int] = {
    EmptyAudio: 400,
    NotAudio: 415,
    AudioTooLong: 413,
    UploadTooLarge: 413,
    UnknownLanguage: 422,
    ModelLoadError: 503,
}


def create_app(settings: Settings, speech: SpeechService | None = None) -> FastAPI:
    speech = speech or SpeechService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.preload:
            await asyncio.to_thread(speech.engine.load)
        yield

    app = FastAPI(title="aiwf whisper", version=__version__, lifespan=lifespan)
    app.state.speech = speech
    app.include_router(api_router)
    app.add_middleware(
        BodySizeLimit,
        max_body_bytes=settings.max_upload_bytes + MULTIPART_ENVELOPE_BYTES,
        detail=f"upload is over the limit of {settings.max_upload_bytes} bytes "
        "(WHISPER_MAX_UPLOAD_BYTES)",
    )

    async def client_error(request: Request, exc: Exception) -> JSONResponse:
        status = STATUS_BY_ERROR[type(exc)]
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        retry = str(settings.retry_after_seconds)
        return JSONResponse(
            {"detail": f"server busy: {exc}; retry after {retry} s"},
            status_code=503,
            headers={"Retry-After": retry},
        )

    for error in STATUS_BY_ERROR:
        app.add_exception_handler(error, client_error)
    app.add_exception_handler(ServerBusy, busy)
    return app
