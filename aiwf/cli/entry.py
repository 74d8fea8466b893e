"""The ``aiwf`` console script: a settled ``aiwf up`` is answered before the CLI is loaded.

Loading the CLI framework and the settings models costs more than everything a repeated
``aiwf up`` on an unchanged stack has to check; :mod:`aiwf.engine.settled` checks that first and
replays the recorded answer. Every other command line goes to :func:`aiwf.cli.main.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """``aiwf ...``: replay a settled ``up``, else run the CLI."""
    from aiwf.engine.settled import replay

    lines = replay(sys.argv[1:])
    if lines is not None:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()
        return
    from aiwf.cli.main import main as run_cli

    run_cli()
