"""Liveness and model information."""

from __future__ import annotations

from fastapi import APIRouter

from whisper_service.api.deps import SpeechDep
from whisper_service.models import HealthPublic, ModelPublic, ModelsPublic

router = APIRouter()


@router.get("/health", response_model=HealthPublic)
@router.get("/api/whisper/health", response_model=HealthPublic)
async def health(speech: SpeechDep) -> HealthPublic:
    """``loading`` only while a preloaded model is still loading; lazy loading reports healthy."""
    return HealthPublic(
        status="healthy" if speech.engine.loaded or not speech.settings.preload else "loading",
        model_loaded=speech.engine.loaded,
        active=speech.gate.active,
        waiting=speech.gate.waiting,
        max_concurrency=speech.gate.max_active,
        max_queue=speech.gate.max_waiting,
    )


@router.get("/api/whisper/models", response_model=ModelsPublic)
async def models(speech: SpeechDep) -> ModelsPublic:
    engine = speech.engine
    return ModelsPublic(
        models=[
            ModelPublic(
                name=engine.model_dir.name,
                path=str(engine.model_dir),
                source=engine.source,
                loaded=engine.loaded,
                device=speech.settings.device,
                compute_type=speech.settings.compute_type,
                load_seconds=None if engine.load_seconds is None else round(engine.load_seconds, 3),
            )
        ]
    )
