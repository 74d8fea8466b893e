"""Where aiwf finds its own files: the templates and the services' build contexts.

The project root is ``$AIWF_ROOT`` when set; else the checkout this package lives in (an editable
install or a source tree, recognised by its ``templates/`` folder); else the current directory.

Example: ``project_root() / "templates" / "nginx.conf.j2"``.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The folder holding ``templates/``, ``services/`` and ``inventory/``."""
    configured = os.environ.get("AIWF_ROOT")
    if configured:
        return Path(configured).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "templates").is_dir():
        return checkout
    return Path.cwd()


def templates_dir() -> Path:
    return project_root() / "templates"


def services_dir() -> Path:
    return project_root() / "services"
