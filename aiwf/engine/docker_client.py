"""The one place aiwf meets docker-py: connecting, and translating its errors.

Every call into docker-py runs inside :func:`engine_errors`, which turns docker-py's and requests'
exceptions into :class:`aiwf.errors.EngineError` with one clear line, so the CLI never shows a
traceback for an engine that refused something::

    client = connect()
    with engine_errors("start ai-workflow-nginx"):
        client.containers.get("ai-workflow-nginx").start()
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aiwf.errors import EngineError

if TYPE_CHECKING:
    import docker

#: Where docker-py looks when ``DOCKER_HOST`` is not set.
DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
#: Seconds docker-py waits for one API answer; builds and imports stream and are not bound by it.
API_TIMEOUT_S = 300


class EngineUnavailable(EngineError):
    """No Docker engine answers at the configured address."""


def engine_url() -> str:
    """``$DOCKER_HOST`` when set, else the local socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def unavailable_message(url: str | None = None) -> str:
    where = url or engine_url()
    return f"no Docker engine answers at {where}; start dockerd or run `make engine`"


def connect(timeout: int = API_TIMEOUT_S) -> docker.DockerClient:
    """A client for the engine at :func:`engine_url`, verified to answer.

    The API version is negotiated with the engine (one ``/version`` call, which doubles as the
    check that it answers). Raises :class:`EngineUnavailable` when nothing answers.
    """
    url = engine_url()
    docker = _import_docker(ssh=url.startswith("ssh://"))
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=timeout)
    except docker.errors.DockerException as error:
        raise EngineUnavailable(f"{unavailable_message(url)} ({_first_line(error)})") from None
    return client


def connect_api(version: str, timeout: int = API_TIMEOUT_S) -> docker.APIClient:
    """A low-level client speaking API ``version`` to :func:`engine_url`, without negotiating.

    For callers that learnt the engine's version earlier (``client.api.api_version``) and want
    to spare the ``/version`` round trip; the first real call tells whether the engine answers.
    """
    url = engine_url()
    docker_py = _import_docker(ssh=url.startswith("ssh://"))
    with engine_errors(f"connect to {url}"):
        client: docker.APIClient = docker_py.APIClient(
            base_url=url, version=version, timeout=timeout
        )
    return client


def _import_docker(ssh: bool) -> Any:
    """Import docker-py; without paramiko unless the engine is reached over ssh.

    docker-py imports its ssh transport (and with it paramiko, a third of its import time) only
    if paramiko imports; for a local socket it is never used, so it is kept out. Nothing else in
    the process is affected: the block is lifted as soon as docker-py is loaded.
    """
    if ssh or "docker" in sys.modules or "paramiko" in sys.modules:
        import docker

        return docker
    sys.modules["paramiko"] = None  # type: ignore[assignment]
    try:
        import docker
    finally:
        del sys.modules["paramiko"]
    return docker


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe(error: BaseException) -> str:
    """The most useful one-line text of a docker-py or requests error."""
    explanation = getattr(error, "explanation", None)
    if explanation:
        return str(explanation).strip().splitlines()[0]
    return _first_line(error)


@contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Run a block of docker-py calls; any engine failure becomes ``EngineError("<action>: ...")``.

    Also usable as a decorator: ``@engine_errors("list containers")``. AiwfErrors raised inside
    pass through unchanged.
    """
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.BuildError as error:
        tail = [
            str(chunk.get("stream") or chunk.get("error") or "").rstrip()
            for chunk in error.build_log
            if isinstance(chunk, dict)
        ]
        lines = [line for line in tail if line][-8:]
        detail = "\n  ".join(lines)
        raise EngineError(f"{action}: {error.msg}\n  {detail}".rstrip()) from None
    except docker.errors.ImageNotFound as error:
        raise EngineError(f"{action}: image not found: {describe(error)}") from None
    except docker.errors.NotFound as error:
        raise EngineError(f"{action}: not found: {describe(error)}") from None
    except docker.errors.APIError as error:
        raise EngineError(f"{action}: the engine refused: {describe(error)}") from None
    except requests.exceptions.ConnectionError as error:
        raise EngineUnavailable(f"{action}: {unavailable_message()}") from error
    except requests.exceptions.Timeout:
        raise EngineError(f"{action}: the engine did not answer in time") from None
    except docker.errors.DockerException as error:
        raise EngineError(f"{action}: {describe(error)}") from None
