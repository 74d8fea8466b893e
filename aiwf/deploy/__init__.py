"""The remote deploy: pyinfra ``@deploy`` functions that put the stack on a Debian/Ubuntu host.

``deploy.py`` at the project root is the pyinfra entry (``pyinfra inventory/production.py
deploy.py``); ``aiwf deploy --inventory PATH`` validates every host's settings first and runs it.
The steps are in :mod:`aiwf.deploy.stack`, the operations pyinfra lacks in
:mod:`aiwf.deploy.operations`, the facts they read in :mod:`aiwf.deploy.facts`.
"""
