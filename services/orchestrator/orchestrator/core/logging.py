"""Logging to stdout and ``<LOG_DIR>/orchestrator.log``.

The file handler is a ``WatchedFileHandler``: when logrotate moves the file away it reopens the
path, and with ``copytruncate`` it keeps appending to the truncated file.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_dir: Path, level: str = "INFO") -> list[str]:
    """Install handlers on the root logger; return problems (an unwritable log dir) as text."""
    problems: list[str] = []
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(FORMAT)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(formatter)
    root.addHandler(console)
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.WatchedFileHandler(log_dir / "orchestrator.log")
    except OSError as exc:
        problems.append(f"cannot write logs to {log_dir}: {exc.strerror}; logging to stdout only")
    else:
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return problems
