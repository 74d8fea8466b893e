"""The pyinfra deploy of the ai-workflow stack: ``pyinfra inventory/production.py deploy.py``.

Thin on purpose: the settings come from the same validated config as the ``aiwf`` command, and
the steps are aiwf's own ``@deploy`` functions (see :mod:`aiwf.deploy`).
"""

from pyinfra.context import host

from aiwf.deploy.stack import deploy_current_host

deploy_current_host(host)
