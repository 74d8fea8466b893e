"""aiwf's deploy run by pyinfra's API on pyinfra's ``@fake`` connector: facts in, commands out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.inventory import Inventory
from pyinfra.api.operations import run_ops
from pyinfra.api.state import State
from pyinfra.connectors.fake import FakeConnector

#: A Debian 12 host reached as root, Docker answering, ports free, systemd running.
DEBIAN_HOST: dict[str, Any] = {
    "id -un": ["user=root", "uid=0", "sudo=yes"],
    "os-release": [
        "distribution=debian",
        "version=12",
        "uid=0",
        "home=/root",
        "systemd=yes",
        "docker=yes",
        "python=3.11",
    ],
    "health --json": [
        '{"healthy": true, "checks": [{"check": "container", "target": "nginx", "ok": true,'
        ' "detail": "running, healthy", "value": null}]}'
    ],
}


@dataclass
class FakeRun:
    """A finished run: every command the fake host received, and whether the host failed."""

    state: State
    commands: list[str]
    failed: bool

    def has(self, text: str) -> bool:
        return any(text in command for command in self.commands)


@pytest.fixture
def run_deploy() -> Callable[..., FakeRun]:
    def run(
        deploy_function: Any, responses: dict[str, Any], execute: bool = True, **kwargs: Any
    ) -> FakeRun:
        data = {"fake_responses": responses, "fake_delay": 0, "fake_delay_jitter": 0}
        inventory = Inventory((["@fake/target"], data))  # type: ignore[no-untyped-call]
        state = State(inventory, Config())  # type: ignore[no-untyped-call]
        connect_all(state)
        failed = False
        try:
            add_deploy(state, deploy_function, **kwargs)
            if execute:
                run_ops(state)
        except PyinfraError:
            failed = True
        target = inventory.get_host("@fake/target")
        failed = failed or target in state.failed_hosts
        connector = target.connector
        assert isinstance(connector, FakeConnector)
        return FakeRun(state, list(connector.executed_commands), failed)

    return run
