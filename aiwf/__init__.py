"""ai-workflow: deploy and operate a self-hosted AI-workflow stack.

The package reads one validated configuration (:mod:`aiwf.config`), renders the stack's files
(:mod:`aiwf.render`) and drives a Docker engine to converge on it.
"""

__version__ = "0.1.0"
