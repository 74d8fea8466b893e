"""What the engine has for one project, read in a handful of list calls (no per-container inspect).

One ``GET /containers/json`` filtered by the project label gives every container with its labels,
state and health (parsed from the status text); one call each lists the project's network and
volumes, and one inspect per service finds its image. That is all a no-op ``aiwf up`` needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiwf.engine.docker_client import engine_errors
from aiwf.engine.labels import LABEL_HASH, LABEL_IMAGE, LABEL_PROJECT, LABEL_SERVICE

if TYPE_CHECKING:
    import docker

_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


@dataclass(frozen=True)
class ObservedContainer:
    """A container of the project as the list call reports it."""

    id: str
    name: str
    service: str
    spec_hash: str
    image_id: str
    state: str
    health: str | None
    status: str

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ObservedStack:
    """The project's containers, images, network and volumes as the engine has them."""

    containers: tuple[ObservedContainer, ...] = ()
    #: ``<project>-<service>:latest`` -> image id, for the tags asked about.
    images: dict[str, str] = field(default_factory=dict)
    network_exists: bool = False
    volumes: frozenset[str] = frozenset()

    def by_name(self) -> dict[str, ObservedContainer]:
        return {container.name: container for container in self.containers}


def parse_health(status: str) -> str | None:
    """``Up 3 minutes (healthy)`` -> ``healthy``; ``None`` when the container has no health."""
    match = _HEALTH.search(status)
    if not match:
        return None
    return "starting" if match.group(1) == "health: starting" else match.group(1)


def container_from_listing(item: dict[str, Any]) -> ObservedContainer:
    """One entry of ``GET /containers/json`` as an :class:`ObservedContainer`."""
    labels = item.get("Labels") or {}
    names = item.get("Names") or ["/"]
    status = str(item.get("Status", ""))
    return ObservedContainer(
        id=str(item["Id"]),
        name=names[0].lstrip("/"),
        service=labels.get(LABEL_SERVICE, ""),
        spec_hash=labels.get(LABEL_HASH, ""),
        image_id=labels.get(LABEL_IMAGE) or str(item.get("ImageID", "")),
        state=str(item.get("State", "")),
        health=parse_health(status),
        status=status,
    )


def list_containers(client: docker.DockerClient, project: str) -> list[ObservedContainer]:
    """Every container labelled with ``project``, running or not, in one call."""
    with engine_errors(f"list the containers of {project}"):
        items = client.api.containers(all=True, filters={"label": f"{LABEL_PROJECT}={project}"})
    return sorted((container_from_listing(item) for item in items), key=lambda c: c.name)


def image_ids(client: docker.DockerClient, tags: Sequence[str]) -> dict[str, str]:
    """Tag -> image id for the tags the engine has (one inspect each: far cheaper than a list,
    which makes the engine sum up every image's size)."""
    import docker.errors

    found: dict[str, str] = {}
    for tag in tags:
        with engine_errors(f"look up {tag}"):
            try:
                found[tag] = str(client.api.inspect_image(tag)["Id"])
            except docker.errors.ImageNotFound:
                continue
    return found


def observe(
    client: docker.DockerClient, project: str, network: str, image_tags: Sequence[str] = ()
) -> ObservedStack:
    """Containers, network, volumes of ``project`` and the ids of ``image_tags``."""
    containers = list_containers(client, project)
    with engine_errors(f"list the network and volumes of {project}"):
        networks = client.api.networks(names=[network])
        volume_items = client.api.volumes(filters={"name": f"{project}_"})
    return ObservedStack(
        containers=tuple(containers),
        images=image_ids(client, image_tags),
        network_exists=any(item.get("Name") == network for item in networks),
        volumes=frozenset(str(v["Name"]) for v in (volume_items.get("Volumes") or ())),
    )
