"""Applying a changed ``nginx.conf`` to the running nginx without a restart, or refusing it.

The candidate is copied into the running container (``put_archive``) next to the live file and
tested there with ``nginx -t``: same binary, same certificates, same paths. Only when it passes
is the rendered file replaced on the host (the container sees the mounted directory) and nginx
told to reload; when it fails the old configuration keeps serving and the error names why.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiwf.engine.docker_client import engine_errors
from aiwf.engine.exec import exec_output
from aiwf.errors import EngineError

if TYPE_CHECKING:
    import docker

CANDIDATE_DIR = "/etc/nginx"
CANDIDATE_NAME = "nginx.conf.candidate"


class NginxConfigRefused(EngineError):
    """``nginx -t`` rejected the new configuration; the running one was kept."""


def _tar_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_candidate(client: docker.DockerClient, container: str, text: str) -> tuple[bool, str]:
    """Run ``nginx -t`` on ``text`` inside ``container``; (passed, nginx's output)."""
    with engine_errors(f"copy the candidate nginx.conf into {container}"):
        client.api.put_archive(container, CANDIDATE_DIR, _tar_of(CANDIDATE_NAME, text.encode()))
    candidate = f"{CANDIDATE_DIR}/{CANDIDATE_NAME}"
    try:
        code, output = exec_output(client, container, ["nginx", "-t", "-c", candidate])
    finally:
        exec_output(client, container, ["rm", "-f", candidate])
    return code == 0, output.replace(candidate, "nginx.conf")


def reload_config(
    client: docker.DockerClient,
    container: str,
    text: str,
    live: Path,
    write: Callable[[Path, bytes], None],
) -> None:
    """Test ``text`` in ``container``; on success write it to ``live`` and reload nginx.

    ``write(path, bytes)`` writes the live file atomically. Raises :class:`NginxConfigRefused`
    (nothing changed) when the test fails.
    """
    passed, output = test_candidate(client, container, text)
    if not passed:
        lines = [line for line in output.splitlines() if "emerg" in line or "failed" in line]
        raise NginxConfigRefused(
            "the new nginx.conf fails `nginx -t`; the running configuration keeps serving: "
            + ("; ".join(lines) or output)
        )
    write(live, text.encode())
    code, output = exec_output(client, container, ["nginx", "-s", "reload"])
    if code != 0:
        raise EngineError(f"nginx in {container} refused to reload: {output}")
