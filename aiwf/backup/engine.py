"""The thin Docker boundary the operations commands use: one client, errors translated once.

docker-py raises its own exception family; every call the operations code makes goes through
:func:`engine_errors`, which turns those into :class:`aiwf.errors.EngineError` naming what was
being done. Example::

    with engine_errors("pausing ai-workflow-orchestrator"):
        docker_client().containers.get("ai-workflow-orchestrator").pause()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from aiwf.errors import EngineError


@cache
def docker_client() -> Any:
    """A docker-py client from the environment (``DOCKER_HOST`` or the local socket)."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as error:
        raise EngineError(
            f"no Docker engine answers ({error}); start one (dockerd) or set DOCKER_HOST"
        ) from None
    return client


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Translate docker-py and connection errors raised inside into one :class:`EngineError`."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.APIError as error:
        reason = error.explanation or str(error)
        raise EngineError(f"{doing}: {reason}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise EngineError(f"{doing}: {error}") from None
