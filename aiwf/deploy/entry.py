"""How ``deploy.py`` finds the settings of the host pyinfra is preparing.

pyinfra's command line names the inventory file; its own argument parser reads it back from the
command line, so ``deploy.py`` loads the very inventory pyinfra loaded, through the same
:func:`aiwf.inventory.settings_for_host` the ``aiwf`` command uses::

    given = host_input(host)      # in deploy.py, via aiwf.deploy.stack.deploy_current_host
    given.config.project          # 'ai-workflow'
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aiwf.deploy.settings import DEPLOY_KEY, DeploySettings
from aiwf.deploy.stack import HostInput
from aiwf.errors import DeployError
from aiwf.inventory import settings_for_host


def pyinfra_arguments(argv: list[str] | None = None) -> tuple[Path, bool]:
    """(inventory file, ``--dry``?) from pyinfra's command line, parsed by pyinfra's own parser.

    Only under pyinfra's command line (which has loaded its parser): importing it elsewhere would
    monkey-patch the whole process for gevent.
    """
    pyinfra_cli = sys.modules.get("pyinfra_cli.cli")
    if pyinfra_cli is None:
        raise DeployError(
            "deploy.py runs under pyinfra's command line: 'pyinfra INVENTORY deploy.py'"
        )
    cli = pyinfra_cli.cli
    words = list(sys.argv[1:] if argv is None else argv)
    context = cli.make_context("pyinfra", words, resilient_parsing=True)
    inventory = context.params.get("inventory")
    if not inventory or not Path(inventory).is_file():
        raise DeployError(
            "deploy.py reads the stack's settings from an inventory file: "
            "run 'pyinfra inventory/production.py deploy.py' (or 'aiwf deploy --inventory ...')"
        )
    return Path(inventory), bool(context.params.get("dry"))


def host_input(host: Any, argv: list[str] | None = None) -> HostInput:
    """The validated settings of pyinfra host ``host``; :class:`ConfigError` names bad fields."""
    inventory, dry = pyinfra_arguments(argv)
    settings, source = settings_for_host(inventory, host.name)
    deploy = DeploySettings.from_host_data(host.data.get(DEPLOY_KEY), source)
    given = HostInput(settings=settings, source=source, deploy=deploy, dry=dry)
    given.config  # noqa: B018 - validates now, before anything runs
    return given
