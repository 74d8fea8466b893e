"""The labels aiwf puts on what it creates in the engine; how it finds its own things again.

Kept apart from :mod:`aiwf.engine.desired` so that reading the engine needs no settings models.
"""

LABEL_PROJECT = "aiwf.project"
LABEL_SERVICE = "aiwf.service"
#: sha256 of a container's whole create body and of every file it bind-mounts.
LABEL_HASH = "aiwf.hash"
LABEL_IMAGE = "aiwf.image"
