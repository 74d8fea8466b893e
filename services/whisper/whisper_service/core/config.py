"""Service settings, read from ``WHISPER_*`` environment variables.

Example::

    WHISPER_PORT=8001 WHISPER_COMPUTE_TYPE=float32 python -m whisper_service
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

COMPUTE_TYPES = frozenset(
    {
        "default",
        "auto",
        "int8",
        "int8_float32",
        "int8_float16",
        "int8_bfloat16",
        "int16",
        "float16",
        "bfloat16",
        "float32",
    }
)


def default_embedded_model_dir() -> Path:
    """Where the embedded model is assembled when no image build put it elsewhere.

    Example: ``~/.cache/aiwf-whisper/whisper-base-1.0.0`` (or under ``$XDG_CACHE_HOME``).
    """
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_root / "aiwf-whisper" / "whisper-base-1.0.0"


class Settings(BaseSettings):
    """Every knob of the service; each maps to ``WHISPER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="WHISPER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    model_dir: Path | None = Field(
        default=None,
        description="A CTranslate2 Whisper model directory (a mounted volume). "
        "Unset: the embedded base model.",
    )
    embedded_model_dir: Path = Field(default_factory=default_embedded_model_dir)
    device: Literal["cpu", "cuda"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = Field(default=0, ge=0)
    preload: bool = True
    beam_size: int = Field(default=5, ge=1, le=20)

    max_concurrency: int = Field(default=1, ge=1)
    max_queue: int = Field(default=4, ge=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    max_duration_seconds: float = Field(default=600.0, gt=0)

    allowed_origins: str = Field(
        default="",
        description="Comma-separated extra origins allowed to open the stream WebSocket; "
        "same-origin requests and clients without an Origin header are always allowed.",
    )
    stream_silence_ms: int = Field(default=600, ge=100)
    stream_partial_interval_ms: int = Field(default=1000, ge=100)
    stream_max_utterance_seconds: float = Field(default=25.0, gt=1, le=30)

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str) -> str:
        if value not in COMPUTE_TYPES:
            allowed = ", ".join(sorted(COMPUTE_TYPES))
            raise ValueError(f"WHISPER_COMPUTE_TYPE={value!r} is not one of: {allowed}")
        return value

    @property
    def origin_allowlist(self) -> frozenset[str]:
        """The parsed ``allowed_origins``, e.g. ``{"https://ai.example.org"}``."""
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def uses_embedded_model(self) -> bool:
        return self.model_dir is None

    @property
    def resolved_model_dir(self) -> Path:
        """The directory the engine loads: ``model_dir`` when set, else the embedded one."""
        return self.model_dir if self.model_dir is not None else self.embedded_model_dir
