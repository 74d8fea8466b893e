"""Where the stack's settings live: with the pyinfra inventory.

An inventory folder is an ordinary pyinfra inventory, read the way pyinfra reads it::

    inventory/
      group_data/all.py   # aiwf = {...}: shared settings, for every host
      group_data/web.py   # aiwf = {...}: settings for the hosts of group "web"
      local.py            # hosts = [("@local", {"aiwf": {...}})]: this machine, with overrides
      production.py       # a remote host, as a commented example

A host's settings are ``group_data/all.py``'s ``aiwf``, then each of its groups' ``aiwf``, then the
host's own ``aiwf`` data, deep-merged in that order. The CLI (``--inventory``) and ``deploy.py``
both go through :func:`settings_for_host`, so they always see the same configuration.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiwf.config import deep_merge
from aiwf.errors import ConfigError
from aiwf.paths import project_root

#: The key under which an inventory carries the stack's settings.
SETTINGS_KEY = "aiwf"


@dataclass(frozen=True)
class InventoryHost:
    """One host of an inventory: its name, the groups it is in and its own data."""

    name: str
    groups: tuple[str, ...]
    data: Mapping[str, Any] = field(default_factory=dict)


def default_inventory() -> Path:
    """``$AIWF_INVENTORY``, else ``inventory/local.py`` of the project."""
    configured = os.environ.get("AIWF_INVENTORY")
    return Path(configured) if configured else project_root() / "inventory" / "local.py"


def _run_python_file(path: Path) -> dict[str, Any]:
    try:
        namespace = runpy.run_path(str(path))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except Exception as error:  # the file is user code: any failure is a config problem
        raise ConfigError([f"{path}: cannot be loaded: {type(error).__name__}: {error}"]) from None
    return {key: value for key, value in namespace.items() if not key.startswith("_")}


def _settings_in(namespace: Mapping[str, Any], source: Path) -> dict[str, Any]:
    value = namespace.get(SETTINGS_KEY, {})
    if not isinstance(value, Mapping):
        raise ConfigError(
            [f"{SETTINGS_KEY}: must be a dict of settings, got {type(value).__name__}"], str(source)
        )
    return dict(value)


def read_hosts(inventory: Path) -> list[InventoryHost]:
    """The hosts of a pyinfra inventory file: every top-level list or tuple is a group."""
    namespace = _run_python_file(inventory)
    hosts: dict[str, InventoryHost] = {}
    for group, members in namespace.items():
        if not isinstance(members, list | tuple):
            continue
        for member in members:
            name, data = member if isinstance(member, tuple) else (member, {})
            if not isinstance(name, str) or not isinstance(data, Mapping):
                raise ConfigError(
                    [f"{group}: each host is a name or (name, data), got {member!r}"],
                    str(inventory),
                )
            known = hosts.get(name)
            merged = deep_merge(known.data, data) if known else dict(data)
            groups = (*known.groups, group) if known else (group,)
            hosts[name] = InventoryHost(name, groups, merged)
    return list(hosts.values())


def settings_for_host(
    inventory: Path | None = None, host: str | None = None
) -> tuple[dict[str, Any], str]:
    """The merged settings mapping for ``host`` (the first host when ``None``) and its source.

    A missing default inventory is not an error: the embedded defaults apply.
    """
    explicit = inventory is not None
    path = inventory or default_inventory()
    if not path.exists():
        if explicit:
            raise ConfigError([f"{path}: inventory file not found; pass an existing --inventory"])
        return {}, "embedded defaults"
    hosts = read_hosts(path)
    group_dir = path.parent / "group_data"
    settings: dict[str, Any] = {}
    if (group_dir / "all.py").exists():
        settings = _settings_in(_run_python_file(group_dir / "all.py"), group_dir / "all.py")
    chosen = _choose_host(hosts, host, path)
    if chosen is None:
        return settings, str(path)
    for group in chosen.groups:
        group_file = group_dir / f"{group}.py"
        if group != "all" and group_file.exists():
            settings = deep_merge(settings, _settings_in(_run_python_file(group_file), group_file))
    return deep_merge(settings, _settings_in(chosen.data, path)), f"{path} (host {chosen.name})"


def _choose_host(hosts: list[InventoryHost], host: str | None, path: Path) -> InventoryHost | None:
    if host is None:
        return hosts[0] if hosts else None
    for candidate in hosts:
        if candidate.name == host:
            return candidate
    names = ", ".join(h.name for h in hosts) or "none"
    raise ConfigError([f"host '{host}' is not in {path} (hosts: {names})"])
