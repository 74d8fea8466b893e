"""Pre-flight checks: what must hold on a host before the deploy changes anything there.

The checks read facts only; each problem is one line saying what is wrong and how to fix it::

    >>> identity_problems(identity, sudo=False, sudo_password=False)
    ["connects as 'deploy', not root, and sudo is off: set '_sudo': True in the host data"]
    >>> host_problems(survey, config)
    ["port 443 is taken by apache2 (pid 812), not this stack's nginx: stop it or ..."]
"""

from __future__ import annotations

import re

from aiwf.config import StackConfig
from aiwf.deploy.facts import Identity, Survey

#: Oldest supported release per distribution: Python 3.11 (aiwf's floor) ships with these.
SUPPORTED: dict[str, tuple[int, ...]] = {"debian": (12,), "ubuntu": (24, 4)}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _listener(line: str) -> str:
    """``users:(("nginx",pid=12,fd=6))`` -> ``nginx (pid 12)``; the raw line when unparsable."""
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
    return f"{match.group(1)} (pid {match.group(2)})" if match else line.split()[-1]


def identity_problems(identity: Identity | None, sudo: bool, sudo_password: bool) -> list[str]:
    """Why the login user cannot act as root (checked before any privileged fact is read)."""
    found: list[str] = []
    if identity is not None and identity.uid != 0:
        if not sudo:
            found.append(
                f"connects as '{identity.user}', not root, and sudo is off: "
                "set '_sudo': True in the host data"
            )
        elif not identity.passwordless_sudo and not sudo_password:
            found.append(
                f"sudo asks '{identity.user}' for a password (or is not allowed): allow "
                "passwordless sudo, or set '_use_sudo_password' in the host data"
            )
    return found


def host_problems(survey: Survey, config: StackConfig) -> list[str]:
    """Every reason not to deploy ``config`` on this host, one line each; empty when fine."""
    found: list[str] = []
    if survey.uid not in (0, -1):
        found.append(f"commands run as uid {survey.uid}, not root: check the sudo settings")
    minimum = SUPPORTED.get(survey.distribution)
    if minimum is None:
        found.append(
            f"unsupported distribution '{survey.distribution or 'unknown'}': "
            "deploy onto Debian 12+ or Ubuntu 24.04+"
        )
    elif _version(survey.version) < minimum:
        floor = ".".join(f"{part:02d}" if i else str(part) for i, part in enumerate(minimum))
        found.append(
            f"unsupported {survey.distribution} {survey.version}: needs {floor} or newer "
            "(Python 3.11+)"
        )
    ours = config.container_name("nginx")
    for port, setting in ((config.ports.https, "ports.https"), (config.ports.http, "ports.http")):
        line = survey.listeners.get(port, "")
        if not line:
            continue
        publishers = survey.publishers.get(port, [])
        if ours in publishers:
            continue
        holder = f"container {', '.join(publishers)}" if publishers else _listener(line)
        found.append(
            f"port {port} is taken by {holder}, not this stack's nginx: "
            f"stop it or choose another {setting}"
        )
    return found
