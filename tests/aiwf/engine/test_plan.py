"""The planner: desired containers against observed ones give exactly the right steps."""

from __future__ import annotations

import dataclasses

from aiwf.config import StackConfig
from aiwf.engine.desired import DesiredContainer, desired_container
from aiwf.engine.observe import ObservedContainer, ObservedStack, container_from_listing
from aiwf.engine.plan import Action, changes, plan_stack
from aiwf.stack import desired_services, stack_volumes


def _desired(config: StackConfig) -> list[DesiredContainer]:
    return [
        desired_container(config, spec, f"sha256:{spec.service}")
        for spec in desired_services(config)
    ]


def _running(want: DesiredContainer, **changes: str) -> ObservedContainer:
    observed = ObservedContainer(
        id=f"id-{want.service}",
        name=want.name,
        service=want.service,
        spec_hash=want.spec_hash,
        image_id=want.image_id,
        state="running",
        health="healthy",
        status="Up 2 minutes (healthy)",
    )
    return dataclasses.replace(observed, **changes)


def _all_there(config: StackConfig, desired: list[DesiredContainer]) -> ObservedStack:
    return ObservedStack(
        containers=tuple(_running(want) for want in desired),
        network_exists=True,
        volumes=frozenset(stack_volumes(config).values()),
    )


def _plan(config: StackConfig, observed: ObservedStack, reload: bool = False):  # type: ignore[no-untyped-def]
    return plan_stack(
        _desired(config),
        observed,
        config.network_name,
        list(stack_volumes(config).values()),
        reload_nginx=reload,
    )


def test_from_nothing_everything_is_created_in_dependency_order(config: StackConfig) -> None:
    steps = _plan(config, ObservedStack())
    assert [(s.action, s.target) for s in steps] == [
        (Action.CREATE_NETWORK, "unit-network"),
        (Action.CREATE_VOLUME, "unit_tmux-session-data"),
        (Action.CREATE_VOLUME, "unit_plane-orchestrator-data"),
        (Action.CREATE_VOLUME, "unit_plane-orchestrator-logs"),
        (Action.CREATE, "sandbox"),
        (Action.CREATE, "tmux-sessions"),
        (Action.CREATE, "orchestrator"),
        (Action.CREATE, "dashboard"),
        (Action.CREATE, "nginx"),
    ]


def test_nothing_changed_means_nothing_to_do(config: StackConfig) -> None:
    desired = _desired(config)
    steps = _plan(config, _all_there(config, desired))
    assert changes(steps) == []
    assert {s.action for s in steps} == {Action.NOTHING}


def test_a_moved_hash_recreates_that_container_alone(config: StackConfig) -> None:
    desired = _desired(config)
    observed = _all_there(config, desired)
    moved = tuple(
        dataclasses.replace(c, spec_hash="old") if c.service == "orchestrator" else c
        for c in observed.containers
    )
    steps = changes(_plan(config, dataclasses.replace(observed, containers=moved)))
    assert [(s.action, s.target, s.reason) for s in steps] == [
        (Action.RECREATE, "orchestrator", "spec changed")
    ]


def test_a_new_image_is_named_as_the_reason(config: StackConfig) -> None:
    desired = _desired(config)
    observed = _all_there(config, desired)
    moved = tuple(
        dataclasses.replace(c, spec_hash="old", image_id="sha256:older")
        if c.service == "dashboard"
        else c
        for c in observed.containers
    )
    [step] = changes(_plan(config, dataclasses.replace(observed, containers=moved)))
    assert (step.action, step.reason) == (Action.RECREATE, "new image")
    assert step.current is not None and step.current.image_id == "sha256:older"


def test_a_stopped_container_with_the_right_hash_is_started(config: StackConfig) -> None:
    desired = _desired(config)
    observed = _all_there(config, desired)
    stopped = tuple(
        dataclasses.replace(c, state="exited", health=None) if c.service == "nginx" else c
        for c in observed.containers
    )
    [step] = changes(_plan(config, dataclasses.replace(observed, containers=stopped)))
    assert (step.action, step.target) == (Action.START, "nginx")


def test_a_changed_nginx_conf_alone_is_a_reload(config: StackConfig) -> None:
    desired = _desired(config)
    [step] = changes(_plan(config, _all_there(config, desired), reload=True))
    assert (step.action, step.target) == (Action.RELOAD, "nginx")


def test_a_reload_is_not_needed_when_nginx_is_recreated_anyway(config: StackConfig) -> None:
    desired = _desired(config)
    observed = _all_there(config, desired)
    moved = tuple(
        dataclasses.replace(c, spec_hash="old") if c.service == "nginx" else c
        for c in observed.containers
    )
    steps = changes(_plan(config, dataclasses.replace(observed, containers=moved), reload=True))
    assert [(s.action, s.target) for s in steps] == [(Action.RECREATE, "nginx")]


def test_containers_nobody_wants_are_orphans(config: StackConfig) -> None:
    desired = _desired(config)
    observed = _all_there(config, desired)
    whisper = ObservedContainer(
        "id-w", "unit-whisper", "whisper", "h", "sha256:w", "running", "healthy", "Up"
    )
    leftover = dataclasses.replace(whisper, id="id-x", name="unit-orchestrator-previous")
    extra = dataclasses.replace(observed, containers=(*observed.containers, whisper, leftover))
    steps = changes(_plan(config, extra))
    assert [(s.action, s.target) for s in steps] == [
        (Action.REMOVE_ORPHAN, "unit-whisper"),
        (Action.REMOVE_ORPHAN, "unit-orchestrator-previous"),
    ]


def test_missing_network_and_volume_are_created_first(config: StackConfig) -> None:
    desired = _desired(config)
    observed = dataclasses.replace(
        _all_there(config, desired),
        network_exists=False,
        volumes=frozenset({"unit_tmux-session-data", "unit_plane-orchestrator-logs"}),
    )
    steps = changes(_plan(config, observed))
    assert [(s.action, s.target) for s in steps] == [
        (Action.CREATE_NETWORK, "unit-network"),
        (Action.CREATE_VOLUME, "unit_plane-orchestrator-data"),
    ]


def test_the_list_call_entry_is_read_with_its_health() -> None:
    entry = {
        "Id": "abc",
        "Names": ["/unit-nginx"],
        "Labels": {"aiwf.service": "nginx", "aiwf.hash": "h1", "aiwf.image": "sha256:i"},
        "State": "running",
        "Status": "Up 5 minutes (health: starting)",
        "ImageID": "sha256:other",
    }
    container = container_from_listing(entry)
    assert (container.name, container.service, container.spec_hash) == ("unit-nginx", "nginx", "h1")
    assert (container.image_id, container.health, container.running) == (
        "sha256:i",
        "starting",
        True,
    )
    assert container_from_listing({**entry, "Status": "Exited (0) 1 second ago"}).health is None
