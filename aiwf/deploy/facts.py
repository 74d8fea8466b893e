"""pyinfra facts the deploy reads from a host: who we are there, what the host is, our own state.

Each fact is one shell command whose output is ``key=value`` lines (or JSON), parsed here, so a
host is surveyed in a round trip or two. Example, inside a deploy::

    survey = host.get_fact(HostSurvey, ports=[80, 443])
    survey.distribution, survey.systemd, survey.port_owners[443]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api.facts import FactBase


def _pairs(output: Iterable[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in output:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Identity:
    """The login user, and whether ``sudo`` works without a password prompt."""

    user: str
    uid: int
    passwordless_sudo: bool


class LoginIdentity(FactBase[Identity | None]):
    """The user pyinfra logs in as, read *without* sudo (call with ``_sudo=False``)."""

    def command(self) -> str:
        return (
            'echo "user=$(id -un)"; echo "uid=$(id -u)"; '
            "if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; "
            'then echo "sudo=yes"; else echo "sudo=no"; fi'
        )

    def process(self, output: Iterable[str]) -> Identity | None:
        values = _pairs(output)
        if "uid" not in values:
            return None
        return Identity(
            user=values.get("user", "?"),
            uid=int(values["uid"]),
            passwordless_sudo=values.get("sudo") == "yes",
        )


@dataclass(frozen=True)
class Survey:
    """What the pre-flight checks and the machine-dependent defaults need to know of a host."""

    distribution: str = ""
    version: str = ""
    uid: int = -1
    home: str = "/root"
    systemd: bool = False
    docker_answers: bool = False
    python: str = ""
    #: Debian's name of the CPU architecture (``amd64``, ``arm64``).
    arch: str = "amd64"
    #: port -> what listens on it (``ss`` line), empty when free.
    listeners: dict[int, str] = field(default_factory=dict)
    #: port -> names of the containers publishing it.
    publishers: dict[int, list[str]] = field(default_factory=dict)


class HostSurvey(FactBase[Survey]):
    """Distribution, privileges, init system, Docker, Python and who holds ``ports``."""

    def command(self, ports: list[int]) -> str:
        parts = [
            '. /etc/os-release 2>/dev/null; echo "distribution=${ID:-}"; '
            'echo "version=${VERSION_ID:-}"',
            'echo "uid=$(id -u)"',
            'echo "home=${HOME:-}"',
            'echo "arch=$(dpkg --print-architecture 2>/dev/null)"',
            'if [ -d /run/systemd/system ]; then echo "systemd=yes"; else echo "systemd=no"; fi',
            "if docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; "
            'then echo "docker=yes"; else echo "docker=no"; fi',
            'echo "python=$(python3 -c \'import sys; print("%d.%d" % sys.version_info[:2])\' '
            '2>/dev/null)"',
        ]
        for port in ports:
            parts.append(
                f"echo \"listen{port}=$(ss -Hltnp 'sport = :{port}' 2>/dev/null | head -n 1)\""
            )
            parts.append(
                f'echo "publish{port}=$(docker ps --filter publish={port} '
                "--format '{{.Names}}' 2>/dev/null | tr '\\n' ' ')\""
            )
        return "; ".join(parts)

    def process(self, output: Iterable[str]) -> Survey:
        values = _pairs(output)
        listeners: dict[int, str] = {}
        publishers: dict[int, list[str]] = {}
        for key, value in values.items():
            if key.startswith("listen") and key[6:].isdigit():
                listeners[int(key[6:])] = value
            if key.startswith("publish") and key[7:].isdigit():
                publishers[int(key[7:])] = value.split()
        uid = values.get("uid", "")
        return Survey(
            distribution=values.get("distribution", "").lower(),
            version=values.get("version", ""),
            uid=int(uid) if uid.lstrip("-").isdigit() else -1,
            home=values.get("home") or "/root",
            systemd=values.get("systemd") == "yes",
            docker_answers=values.get("docker") == "yes",
            python=values.get("python", ""),
            arch=values.get("arch") or "amd64",
            listeners=listeners,
            publishers=publishers,
        )


class TextFile(FactBase[str | None]):
    """A small text file's content (a marker, a lock, a certificate), ``None`` when absent."""

    def command(self, path: str) -> str:
        quoted = "'" + path.replace("'", "'\\''") + "'"
        return f"if [ -f {quoted} ]; then echo present; cat {quoted}; else echo absent; fi"

    def process(self, output: Iterable[str]) -> str | None:
        lines = list(output)
        if not lines or lines[0] != "present":
            return None
        return "\n".join(lines[1:])

    @staticmethod
    def default() -> str | None:
        return None


def _json_or_none(output: Iterable[str]) -> Any:
    text = "\n".join(output).strip()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return {"status": "unreadable", "output": text[-500:]}


class StackPlan(FactBase[dict[str, Any] | None]):
    """``aiwf up --json`` on the host (the plan, nothing applied); ``None`` before aiwf is there.

    Example: ``{"missing_images": [], "steps": []}`` for a stack with nothing to do.
    """

    def command(self, command: str) -> str:
        return (
            f"if [ -x {command} ]; then {command} up --json 2>/dev/null "
            "|| echo '{\"error\": true}'; else echo '{\"installed\": false}'; fi"
        )

    def process(self, output: Iterable[str]) -> dict[str, Any] | None:
        value = _json_or_none(output)
        if not isinstance(value, dict) or value.get("installed") is False:
            return None
        return value

    @staticmethod
    def default() -> dict[str, Any] | None:
        return None


class StackHealth(FactBase[Any]):
    """``aiwf health --json`` on the host (whatever its exit status); ``None`` before aiwf is there.

    Example: ``{"healthy": false, "checks": [{"check": "container", "target": "nginx",
    "ok": false, "detail": "no container", "value": null}, ...]}``.
    """

    def command(self, command: str) -> str:
        return (
            f"if [ -x {command} ]; then {command} health --json 2>/dev/null; true; "
            "else echo '{\"installed\": false}'; fi"
        )

    def process(self, output: Iterable[str]) -> Any:
        value = _json_or_none(output)
        if isinstance(value, dict) and value.get("installed") is False:
            return None
        return value

    @staticmethod
    def default() -> Any:
        return None
