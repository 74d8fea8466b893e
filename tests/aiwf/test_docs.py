"""docs/configuration.md is generated from the settings models and must match them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from aiwf.config import StackConfig
from aiwf.docs import configuration_reference
from aiwf.paths import project_root


def _leaf_settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        path = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _leaf_settings(annotation, f"{path}.")
        else:
            names.append(path)
    return names


def test_committed_reference_is_current() -> None:
    committed = (project_root() / "docs" / "configuration.md").read_text()
    assert committed == configuration_reference(), (
        "docs/configuration.md is stale: run `aiwf config-reference --out docs/configuration.md`"
    )


def test_reference_names_every_setting_with_its_default() -> None:
    text = configuration_reference()
    for path in _leaf_settings(StackConfig):
        assert f"| `{path}` |" in text, path
    assert "| `services.orchestrator.port` | port | `5002` |" in text
    assert '| `speech.mode` | `"off"` \\| `"local"` \\| `"remote"` | `off` |' in text
    assert "| `paths.backup_dir` | absolute path or none | `<data_dir>/backups` |" in text


def test_reference_is_the_same_on_every_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    first = configuration_reference()
    monkeypatch.setenv("HOME", "/somewhere/else")
    assert configuration_reference() == first
