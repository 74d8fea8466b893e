"""Desired containers as Engine API data, each carrying the hash of everything it is made of.

:func:`container_body` turns one :class:`~aiwf.stack.ServiceSpec` and the id of its built image
into the exact body of ``POST /containers/create`` (a plain dict: nothing here talks to the
engine). :func:`spec_hash` hashes that body together with the contents of the files the container
mounts one by one (secrets, ``claude.json``), so a changed image, variable, mount, port, limit,
health check or mounted file moves the hash and converge recreates exactly that container.
The rendered ``nginx.conf`` is mounted as part of a directory and is not hashed: its change is a
reload (see :mod:`aiwf.engine.nginx`).

Example::

    body = container_body(config, spec, image_id="sha256:4f2a...")
    body["Labels"]["aiwf.hash"]        # '9c1e0b...' (64 hex digits)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiwf.config import StackConfig
from aiwf.engine.labels import LABEL_HASH, LABEL_IMAGE, LABEL_PROJECT, LABEL_SERVICE
from aiwf.stack import (
    HOST_GATEWAY_ALIAS,
    SECRETS_MOUNT,
    Mount,
    ServiceSpec,
    secrets_dir,
    volume_name,
)

_NANO = 1_000_000_000
_SIZE = re.compile(r"^([0-9]+)([kmg]?)$")
FileReader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class DesiredContainer:
    """One container as converge wants it: its service, name, create body and hash."""

    service: str
    name: str
    image_id: str
    body: dict[str, Any]
    spec_hash: str
    depends_on: tuple[str, ...]


def size_in_bytes(size: str) -> int:
    """``512m`` -> 536870912 (the config's size notation, as the engine wants it)."""
    match = _SIZE.match(size.lower())
    if not match:
        raise ValueError(f"'{size}' is not a size")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def _mount_body(config: StackConfig, mount: Mount) -> dict[str, Any]:
    if mount.kind == "volume":
        return {
            "Type": "volume",
            "Source": volume_name(config, mount.source),
            "Target": mount.target,
            "ReadOnly": mount.read_only,
        }
    return {
        "Type": "bind",
        "Source": mount.source,
        "Target": mount.target,
        "ReadOnly": mount.read_only,
    }


def secret_mounts(config: StackConfig, spec: ServiceSpec) -> list[Mount]:
    """Each secret of ``spec`` as a read-only file under ``/run/secrets``."""
    folder = secrets_dir(config)
    return [
        Mount(source=str(folder / name), target=str(SECRETS_MOUNT / name), read_only=True)
        for name in spec.secrets
    ]


def container_body(config: StackConfig, spec: ServiceSpec, image_id: str) -> dict[str, Any]:
    """The ``POST /containers/create`` body of ``spec`` running ``image_id`` (without its hash)."""
    mounts = [*spec.mounts, *secret_mounts(config, spec)]
    health = spec.healthcheck
    host_config: dict[str, Any] = {
        "Mounts": [_mount_body(config, mount) for mount in mounts],
        "RestartPolicy": {"Name": spec.restart},
        "LogConfig": {
            "Type": "json-file",
            "Config": {
                "max-size": config.logrotate.container_max_size,
                "max-file": str(config.logrotate.container_max_files),
            },
        },
        "NetworkMode": "bridge" if spec.isolated else config.network_name,
        "Init": True,
        # No process gains privileges through a setuid program, in any container.
        "SecurityOpt": ["no-new-privileges"],
    }
    if spec.reaches_host:
        host_config["ExtraHosts"] = [HOST_GATEWAY_ALIAS]
    if spec.drop_capabilities:
        host_config["CapDrop"] = ["ALL"]
    if spec.pids_limit is not None:
        host_config["PidsLimit"] = spec.pids_limit
    exposed: dict[str, dict[str, Any]] = {}
    if spec.ports:
        bindings: dict[str, list[dict[str, str]]] = {}
        for bind, host_port, container_port in spec.ports:
            key = f"{container_port}/tcp"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": bind, "HostPort": str(host_port)})
        host_config["PortBindings"] = bindings
    if spec.cpus is not None:
        host_config["NanoCpus"] = int(spec.cpus * _NANO)
    if spec.memory is not None:
        host_config["Memory"] = size_in_bytes(spec.memory)
    body: dict[str, Any] = {
        "Image": image_id,
        "Env": [f"{key}={value}" for key, value in sorted(spec.environment.items())],
        "Labels": {
            **spec.labels,
            LABEL_PROJECT: config.project,
            LABEL_SERVICE: spec.service,
            LABEL_IMAGE: image_id,
        },
        "Healthcheck": {
            "Test": list(health.test),
            "Interval": health.interval_s * _NANO,
            "Timeout": health.timeout_s * _NANO,
            "Retries": health.retries,
            "StartPeriod": health.start_period_s * _NANO,
        },
        "HostConfig": host_config,
    }
    if not spec.isolated:
        endpoints = {config.network_name: {"Aliases": [spec.service]}}
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    if exposed:
        body["ExposedPorts"] = exposed
    return body


def read_file(path: str) -> bytes | None:
    """A mounted file's bytes; ``None`` when the path is not a regular file (a folder, missing)."""
    candidate = Path(path)
    try:
        return candidate.read_bytes() if candidate.is_file() else None
    except OSError:
        return None


def spec_hash(body: Mapping[str, Any], reader: FileReader = read_file) -> str:
    """sha256 of the body and of the contents of every single file it bind-mounts.

    Folders (the rendered directory, the workspace) are not hashed: their contents change while
    the stack runs and are meant to.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for mount in body["HostConfig"]["Mounts"]:
        if mount["Type"] != "bind":
            continue
        content = reader(mount["Source"])
        if content is not None:
            digest.update(b"\0" + mount["Source"].encode() + b"\0")
            digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def desired_container(
    config: StackConfig, spec: ServiceSpec, image_id: str, reader: FileReader = read_file
) -> DesiredContainer:
    """The container of ``spec``: its body labelled with its own hash."""
    body = container_body(config, spec, image_id)
    digest = spec_hash(body, reader)
    body["Labels"][LABEL_HASH] = digest
    return DesiredContainer(
        service=spec.service,
        name=spec.container_name,
        image_id=image_id,
        body=body,
        spec_hash=digest,
        depends_on=spec.depends_on,
    )
