"""Pydantic models of the HTTP and WebSocket API, grouped by resource."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


# Transcription
class SegmentPublic(BaseModel):
    start: float
    end: float
    text: str


class TranscriptionPublic(BaseModel):
    """``POST /api/whisper/transcribe``, e.g. ``{"text": "Hello.", "language": "en", ...}``."""

    text: str
    language: str
    duration: float
    segments: list[SegmentPublic]


# Streaming (server -> client text frames)
class StreamResult(BaseModel):
    """A partial (still speaking) or final (utterance ended) transcript of utterance ``index``."""

    type: Literal["partial", "final"]
    text: str
    index: int
    duration: float


class StreamError(BaseModel):
    type: Literal["error"] = "error"
    detail: str
    retry_after: int | None = None


# Model and health
class ModelPublic(BaseModel):
    """``GET /api/whisper/models``: what is (or will be) loaded, and from where."""

    name: str
    path: str
    source: str
    loaded: bool
    device: str
    compute_type: str
    load_seconds: float | None


class ModelsPublic(BaseModel):
    models: list[ModelPublic]


class HealthPublic(BaseModel):
    status: Literal["healthy", "loading"]
    model_loaded: bool
    active: int
    waiting: int
    max_concurrency: int
    max_queue: int


class ErrorPublic(BaseModel):
    detail: str
