"""Dependencies shared by the routes: the one ``SpeechService`` of the running app."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from whisper_service.service import SpeechService


def get_speech(connection: HTTPConnection) -> SpeechService:
    return cast(SpeechService, connection.app.state.speech)


SpeechDep = Annotated[SpeechService, Depends(get_speech)]
