"""What the engine has for one project, read in a handful of list calls (no per-container inspect).

One ``GET /containers/json`` filtered by the project label gives every container with its labels,
state and health (parsed from the status text); one call each lists the project's images, its
network and its volumes. That is all a no-op ``aiwf up`` needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiwf.engine.desired import LABEL_HASH, LABEL_IMAGE, LABEL_PROJECT, LABEL_SERVICE
from aiwf.engine.docker_client import engine_errors

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
    #: ``<project>-<service>:latest`` -> image id.
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


def observe(client: docker.DockerClient, project: str, network: str) -> ObservedStack:
    """Containers, images, network and volumes of ``project``: four list calls."""
    containers = list_containers(client, project)
    with engine_errors(f"list the images, network and volumes of {project}"):
        image_items = client.api.images(name=f"{project}-*")
        networks = client.api.networks(names=[network])
        volume_items = client.api.volumes(filters={"name": f"{project}_"})
    images: dict[str, str] = {}
    for image in image_items:
        for tag in image.get("RepoTags") or ():
            images[tag] = str(image["Id"])
    return ObservedStack(
        containers=tuple(containers),
        images=images,
        network_exists=any(item.get("Name") == network for item in networks),
        volumes=frozenset(str(v["Name"]) for v in (volume_items.get("Volumes") or ())),
    )
