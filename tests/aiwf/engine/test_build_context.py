"""Build-context preparation on the host: what goes in, what is left out, when dist is stale."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from aiwf.engine.build import (
    dashboard_dist_is_fresh,
    declared_buildargs,
    hash_files,
    node_environment,
    source_files,
    wheel_commands,
)


def test_caches_and_tests_stay_out_of_the_context(tmp_path: Path) -> None:
    for name in (
        "pkg/mod.py",
        "pkg/__pycache__/mod.pyc",
        "node_modules/x/index.js",
        "x.egg-info/PKG-INFO",
        "tests/test_x.py",
        "Dockerfile",
        "dist/index.html",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    found = {str(path.relative_to(tmp_path)) for path in source_files(tmp_path)}
    assert found == {"pkg/mod.py", "Dockerfile", "dist/index.html"}


def test_the_context_hash_follows_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one")
    first = hash_files(source_files(tmp_path), tmp_path)
    (tmp_path / "a").write_text("two")
    assert hash_files(source_files(tmp_path), tmp_path) != first
    (tmp_path / "a").write_text("one")
    assert hash_files(source_files(tmp_path), tmp_path) == first
    (tmp_path / "a").rename(tmp_path / "b")
    assert hash_files(source_files(tmp_path), tmp_path) != first


def test_same_python_builds_wheels_another_downloads_binary_ones(tmp_path: Path) -> None:
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    [same] = wheel_commands(tmp_path, tmp_path / "w", host)
    assert same[4] == "wheel" and same[-1] == str(tmp_path) and "--no-deps" not in same
    own, download = wheel_commands(tmp_path, tmp_path / "w", "3.12")
    assert "--no-deps" in own
    assert download[download.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in download and "cp312" in download


def test_only_dockerfiles_that_ask_get_the_owner_ids(tmp_path: Path) -> None:
    asks = tmp_path / "Dockerfile.asks"
    asks.write_text("ARG BASE_IMAGE\nARG APP_UID=1000\nARG APP_GID=1000\n")
    plain = tmp_path / "Dockerfile.plain"
    plain.write_text("ARG BASE_IMAGE\n")
    wanted = {"APP_UID": "1000", "APP_GID": "1000"}
    assert declared_buildargs(asks, wanted) == wanted
    assert declared_buildargs(plain, wanted) == {}


def test_dist_is_stale_when_a_source_is_newer(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    source = tmp_path / "src" / "App.tsx"
    source.write_text("x")
    assert not dashboard_dist_is_fresh(tmp_path)  # no dist at all
    (tmp_path / "dist").mkdir()
    index = tmp_path / "dist" / "index.html"
    index.write_text("<html>")
    past = time.time() - 60
    os.utime(source, (past, past))
    assert dashboard_dist_is_fresh(tmp_path)
    os.utime(source, None)
    os.utime(index, (past, past))
    assert not dashboard_dist_is_fresh(tmp_path)


def test_npm_finds_the_node_that_make_provides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provided = tmp_path / ".tools" / "node" / "bin"
    monkeypatch.setenv("AIWF_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert node_environment()["PATH"] == "/usr/bin:/bin"
    provided.mkdir(parents=True)
    assert node_environment()["PATH"] == f"{provided}:/usr/bin:/bin"
