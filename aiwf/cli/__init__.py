"""The ``aiwf`` command line: one module per command group, sharing :class:`AppContext`.

Each module in this package that defines ``register(app)`` adds its commands; :mod:`aiwf.cli.main`
finds them. Command modules import heavy libraries (docker, pyinfra) inside their functions, so
``aiwf`` starts fast.
"""
