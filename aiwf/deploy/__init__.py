"""The remote deploy: pyinfra ``@deploy`` functions that put the stack on a Debian/Ubuntu host.

``deploy.py`` at the project root is the pyinfra entry (``pyinfra inventory/production.py
deploy.py``); ``aiwf deploy --inventory PATH [--dry] [--limit HOST]`` validates every host's
settings first, without connecting, and then runs it. The steps are in :mod:`aiwf.deploy.stack`,
the operations pyinfra lacks in :mod:`aiwf.deploy.operations`, the facts they read in
:mod:`aiwf.deploy.facts`.

A host's inventory data holds, besides pyinfra's own keys (``ssh_user``, ``_sudo``, ...):

* ``aiwf``: the stack's settings, merged over ``group_data/all.py``'s (see :mod:`aiwf.inventory`);
* ``aiwf_deploy``: how to install them (:class:`aiwf.deploy.settings.DeploySettings`)::

      ("ai.example.com", {
          "ssh_user": "deploy", "_sudo": True,
          "aiwf": {"domains": ["ai.example.com"], "paths": {"data_dir": "/srv/ai-workflow"}},
          "aiwf_deploy": {"docker_source": "docker", "owner": "deploy"},
      })

On the host everything aiwf keeps lives under ``<data_dir>/aiwf``: ``venv/``, ``src/``
(templates and build contexts), ``inventory/host.py`` (the host's settings), ``secrets/``, and
``bin/aiwf``, which runs aiwf there with those settings (``bin/aiwf ps``, ``bin/aiwf backup``).
"""
