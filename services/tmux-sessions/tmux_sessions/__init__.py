"""Persistent tmux sessions over HTTP and WebSocket, and the login of the aiwf stack."""
