"""``python -m orchestrator``: read settings, set up logging, serve the API with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from orchestrator.api.main import create_app
from orchestrator.core.config import Settings
from orchestrator.core.logging import configure_logging


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "ORCHESTRATOR_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"orchestrator: bad setting {field}: {error['msg']}", file=sys.stderr)
        return 2
    problems = configure_logging(settings.log_dir, settings.log_level)
    app = create_app(settings, problems)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
