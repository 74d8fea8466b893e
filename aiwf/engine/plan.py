"""The planner: desired containers vs what the engine has -> the list of steps converge takes.

Pure data in, pure data out; nothing here talks to the engine, so every rule is unit-tested::

    steps = plan_stack(desired, observed, volumes=["ai-workflow_tmux-session-data"], ...)
    [str(step) for step in steps]
    # ['create network ai-workflow-network', 'create orchestrator: not there', ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from aiwf.engine.desired import DesiredContainer
from aiwf.engine.observe import ObservedContainer, ObservedStack


class Action(StrEnum):
    CREATE_NETWORK = "create-network"
    CREATE_VOLUME = "create-volume"
    CREATE = "create"
    RECREATE = "recreate"
    START = "start"
    RELOAD = "reload"
    REMOVE_ORPHAN = "remove-orphan"
    NOTHING = "nothing"


#: Actions that change something (everything but ``nothing``).
CHANGES = frozenset(Action) - {Action.NOTHING}


@dataclass(frozen=True)
class Step:
    """One thing converge does: ``action`` on ``target`` (a service, network or volume name)."""

    action: Action
    target: str
    reason: str = ""
    #: The container of the step's service as it is now, when there is one.
    current: ObservedContainer | None = None
    #: The container as it should be (create, recreate, start, nothing).
    desired: DesiredContainer | None = None

    def __str__(self) -> str:
        return f"{self.action.value} {self.target}" + (f": {self.reason}" if self.reason else "")

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action.value, "target": self.target, "reason": self.reason}


def _container_step(
    want: DesiredContainer, have: ObservedContainer | None, reload_nginx: bool
) -> Step:
    if have is None:
        return Step(Action.CREATE, want.service, "not there", desired=want)
    if have.spec_hash != want.spec_hash:
        reason = "new image" if have.image_id != want.image_id else "spec changed"
        return Step(Action.RECREATE, want.service, reason, current=have, desired=want)
    if not have.running:
        return Step(Action.START, want.service, f"is {have.state}", current=have, desired=want)
    if want.service == "nginx" and reload_nginx:
        return Step(Action.RELOAD, "nginx", "nginx.conf changed", current=have, desired=want)
    health = f" ({have.health})" if have.health else ""
    return Step(Action.NOTHING, want.service, f"up to date{health}", current=have, desired=want)


def plan_stack(
    desired: Sequence[DesiredContainer],
    observed: ObservedStack,
    network: str,
    volumes: Sequence[str],
    reload_nginx: bool = False,
) -> list[Step]:
    """Every step to go from ``observed`` to ``desired``, in the order converge applies them.

    Network and volumes first, then one step per desired container in dependency order, then
    the project's containers nothing asks for any more (orphans: a disabled service, a second
    container of one service left by an interrupted run).
    """
    steps: list[Step] = []
    if not observed.network_exists:
        steps.append(Step(Action.CREATE_NETWORK, network, "not there"))
    steps.extend(
        Step(Action.CREATE_VOLUME, volume, "not there")
        for volume in volumes
        if volume not in observed.volumes
    )
    by_name = observed.by_name()
    wanted_names = {want.name for want in desired}
    for want in desired:
        steps.append(_container_step(want, by_name.get(want.name), reload_nginx))
    for have in observed.containers:
        if have.name not in wanted_names:
            what = f"service {have.service}" if have.service else "unknown service"
            steps.append(
                Step(Action.REMOVE_ORPHAN, have.name, f"{what} is not wanted", current=have)
            )
    return steps


def changes(steps: Sequence[Step]) -> list[Step]:
    """The steps that change something."""
    return [step for step in steps if step.action in CHANGES]
