"""Ticket orchestrator: turns approved tracker tickets into agent sessions in tmux."""

__version__ = "0.1.0"
