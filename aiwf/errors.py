"""The one error family of aiwf.

Every failure a user can cause or meet is an :class:`AiwfError`; the CLI prints its message as one
line and exits with :attr:`AiwfError.exit_code`. Errors from libraries (docker-py, pyinfra, OS
calls) are translated into this family once, at the boundary where they occur.

Example::

    raise ConfigError(["services.orchestrator.port: 70000 is not a valid port"])
"""

from __future__ import annotations

from collections.abc import Sequence


class AiwfError(Exception):
    """Base of every error aiwf reports to a user; the message is one clear line."""

    exit_code = 1


class ConfigError(AiwfError):
    """The configuration is invalid; carries every problem found, each naming its field path."""

    exit_code = 2

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        head = f"{count} configuration problem{'s' if count != 1 else ''}{where}"
        super().__init__(f"{head}: " + "; ".join(self.problems))


class UsageError(AiwfError):
    """A command was called with arguments that cannot work (unknown service, bad flag value)."""

    exit_code = 2


class EngineError(AiwfError):
    """The Docker engine refused or failed an operation, or cannot be reached."""


class LockedError(AiwfError):
    """Another aiwf process holds the deploy lock."""

    exit_code = 3


class HealthError(AiwfError):
    """One or more parts of the stack are unhealthy."""


class BackupError(AiwfError):
    """A backup or restore could not be made or verified; nothing was changed."""


class CertificateError(AiwfError):
    """A certificate could not be made, read or renewed."""


class DeployError(AiwfError):
    """A remote deploy could not run or stopped before changing anything unsafe."""
