"""Fixtures for the operations tests: a Docker engine, the local base image, a private stack.

Every stack gets its own project name; its containers and volumes are removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiwf.config import StackConfig, validate


def _client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as error:  # no engine: the engine tests cannot run here
        pytest.skip(f"no Docker engine answers: {error}")
    return client


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return _client()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The engine's local Debian base image (python3, tar, zstd, nginx), built when missing."""
    from aiwf.engine.base_images import ensure_base_image

    return ensure_base_image(docker_client, "python")


def make_settings(tmp_path: Path, project: str) -> dict[str, Any]:
    return {
        "project": project,
        "paths": {
            "data_dir": str(tmp_path / "data"),
            "backup_dir": str(tmp_path / "backups"),
            "certs_dir": str(tmp_path / "certs"),
        },
    }


def write_inventory(tmp_path: Path, settings: dict[str, Any]) -> Path:
    inventory = tmp_path / f"inventory_{settings['project'].replace('-', '_')}.py"
    inventory.write_text(f"hosts = [('@local', {{'aiwf': {settings!r}}})]\n")
    return inventory


def cleanup_project(client: Any, project: str) -> None:
    for container in client.containers.list(all=True):
        if container.name.startswith(f"{project}-") or (
            container.labels.get("aiwf.project") == project
        ):
            container.remove(force=True)
    for volume in client.volumes.list():
        if volume.name.startswith(f"{project}_"):
            volume.remove(force=True)


@pytest.fixture
def project_factory(docker_client: Any, tmp_path: Path) -> Iterator[Any]:
    """``make(label)`` -> a fresh StackConfig with its own project name and directories."""
    made: list[str] = []

    def make(label: str = "ops") -> StackConfig:
        project = f"aiwfops-{label}-{uuid.uuid4().hex[:8]}"
        made.append(project)
        root = tmp_path / project
        root.mkdir()
        return validate(make_settings(root, project))

    yield make
    for project in made:
        cleanup_project(docker_client, project)


@pytest.fixture
def stack(project_factory: Any) -> StackConfig:
    config: StackConfig = project_factory()
    return config


def run_in_volume(client: Any, image: str, volume: str, script: str, mode: str = "rw") -> str:
    """Run a python3 script in a throwaway container with ``volume`` at /data; its stdout."""
    output: bytes = client.containers.run(
        image,
        ["python3", "-c", script],
        volumes={volume: {"bind": "/data", "mode": mode}},
        remove=True,
        network_mode="none",
    )
    return output.decode()


def shell_in_volume(client: Any, image: str, volume: str, command: str) -> str:
    output: bytes = client.containers.run(
        image,
        ["sh", "-c", command],
        volumes={volume: {"bind": "/data", "mode": "rw"}},
        remove=True,
        network_mode="none",
    )
    return output.decode()


#: Lists a tree independently of aiwf's own code: type, mode, owner, size, link target, sha256.
LISTING = r"""cd /data && find . -printf '%p|%y|%m|%U|%G|%l\n' | sort > /tmp/meta &&
find . -type f -print0 | sort -z | xargs -0 -r sha256sum > /tmp/sums &&
cat /tmp/meta && echo --- && cat /tmp/sums"""


def listing(client: Any, image: str, volume: str) -> str:
    return shell_in_volume(client, image, volume, LISTING)
