"""Run the service: ``python -m whisper_service`` (settings from ``WHISPER_*`` variables).

The model is loaded before the port opens, so a bad ``WHISPER_MODEL_DIR`` stops the process
with one line naming the directory instead of a half-started service.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from whisper_service.core.config import Settings
from whisper_service.engine import ModelLoadError
from whisper_service.main import create_app
from whisper_service.service import SpeechService


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        for problem in exc.errors():
            field = "WHISPER_" + "_".join(str(p) for p in problem["loc"]).upper()
            print(f"error: {field}: {problem['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    speech = SpeechService(settings)
    if settings.preload:
        try:
            speech.engine.load()
        except ModelLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    uvicorn.run(
        create_app(settings, speech),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=1 << 20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
