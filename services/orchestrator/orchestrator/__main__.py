"""``python -m orchestrator``: read settings, set up logging, serve the API with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from orchestrator.api.main import create_app
from orchestrator.core.config import Settings
from orchestrator.core.logging import configure_logging


def setting_name(location: tuple[int | str, ...]) -> str:
    """The variable to fix, and where inside it for a JSON setting.

    >>> setting_name(("repository", "projects", "OPS", "url"))
    'ORCHESTRATOR_REPOSITORY (at projects.OPS.url)'
    >>> setting_name(("max_active",))
    'ORCHESTRATOR_MAX_ACTIVE'
    """
    name = f"ORCHESTRATOR_{str(location[0]).upper()}"
    inside = ".".join(str(part) for part in location[1:])
    return f"{name} (at {inside})" if inside else name


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            print(
                f"orchestrator: bad setting {setting_name(error['loc'])}: {error['msg']}",
                file=sys.stderr,
            )
        return 2
    problems = configure_logging(settings.log_dir, settings.log_level)
    app = create_app(settings, problems)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
