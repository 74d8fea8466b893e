"""All routes of the service in one router."""

from fastapi import APIRouter

from whisper_service.api.routes import health, stream, transcribe

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(transcribe.router)
api_router.include_router(stream.router)
