"""The engine: builds the stack's images and converges the Docker engine on :mod:`aiwf.stack`.

Everything here talks to Docker through docker-py alone. Planners (:mod:`aiwf.engine.plan`,
:mod:`aiwf.engine.build`'s context preparation) return data and never touch the engine; executors
(:mod:`aiwf.engine.converge`) apply that data. docker-py is imported inside functions so that
``aiwf --help`` and ``aiwf check`` start fast.
"""
