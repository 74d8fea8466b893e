"""Fixtures for the engine's unit tests: a config whose every host path is a private temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiwf.config import StackConfig, validate


@pytest.fixture
def config(tmp_path: Path) -> StackConfig:
    return validate(
        {
            "project": "unit",
            "ports": {"bind": "127.0.0.1", "http": 18080, "https": 18443},
            "paths": {
                "data_dir": str(tmp_path / "data"),
                "tmux_socket_dir": str(tmp_path / "tmux"),
                "home": str(tmp_path / "home"),
                "certs_dir": str(tmp_path / "certs"),
            },
        }
    )
