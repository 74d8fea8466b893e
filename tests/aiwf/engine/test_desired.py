"""The container body and its hash: what moves the hash and what does not."""

from __future__ import annotations

from pathlib import Path

from aiwf.config import StackConfig, validate
from aiwf.engine.desired import (
    LABEL_HASH,
    container_body,
    desired_container,
    size_in_bytes,
    spec_hash,
)
from aiwf.stack import desired_services


def _spec(config: StackConfig, service: str):  # type: ignore[no-untyped-def]
    return next(spec for spec in desired_services(config) if spec.service == service)


def _with(config: StackConfig, **changes: object) -> StackConfig:
    data = config.model_dump(mode="json")
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return validate(data)


def test_body_carries_everything_the_engine_needs(config: StackConfig) -> None:
    body = container_body(config, _spec(config, "nginx"), "sha256:aaa")
    assert body["Image"] == "sha256:aaa"
    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
        "443/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18443"}],
    }
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "unless-stopped"}
    assert body["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert body["NetworkingConfig"]["EndpointsConfig"] == {"unit-network": {"Aliases": ["nginx"]}}
    assert body["Labels"]["aiwf.project"] == "unit"
    assert body["Labels"]["aiwf.service"] == "nginx"


def test_only_nginx_publishes_ports(config: StackConfig) -> None:
    for spec in desired_services(config):
        body = container_body(config, spec, "sha256:aaa")
        published = "PortBindings" in body["HostConfig"]
        assert published == (spec.service == "nginx"), spec.service


def test_secrets_are_mounted_as_read_only_files_and_never_in_the_body(
    config: StackConfig,
) -> None:
    secrets = Path(config.paths.data_dir) / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "service_token").write_text("very-secret-token")
    body = desired_container(config, _spec(config, "orchestrator"), "sha256:aaa").body
    mounts = {m["Target"]: m for m in body["HostConfig"]["Mounts"]}
    assert mounts["/run/secrets/service_token"]["ReadOnly"] is True
    assert mounts["/run/secrets/service_token"]["Source"] == str(secrets / "service_token")
    assert "very-secret-token" not in repr(body)


def test_the_same_inputs_give_the_same_hash(config: StackConfig) -> None:
    first = desired_container(config, _spec(config, "orchestrator"), "sha256:aaa")
    again = desired_container(config, _spec(config, "orchestrator"), "sha256:aaa")
    assert first.spec_hash == again.spec_hash == first.body["Labels"][LABEL_HASH]


def test_image_env_resources_and_ports_move_the_hash(config: StackConfig) -> None:
    def digest(cfg: StackConfig, image: str = "sha256:aaa", service: str = "orchestrator") -> str:
        return desired_container(cfg, _spec(cfg, service), image).spec_hash

    base = digest(config)
    assert digest(config, image="sha256:bbb") != base
    assert digest(_with(config, services__orchestrator__environment={"X": "1"})) != base
    assert digest(_with(config, services__orchestrator__resources={"memory": "512m"})) != base
    assert digest(_with(config, logrotate__container_max_files=5)) != base
    nginx = digest(config, service="nginx")
    assert digest(_with(config, ports__https=19443), service="nginx") != nginx


def test_a_change_elsewhere_leaves_the_hash_alone(config: StackConfig) -> None:
    before = desired_container(config, _spec(config, "dashboard"), "sha256:aaa").spec_hash
    other = _with(config, services__orchestrator__environment={"X": "1"})
    after = desired_container(other, _spec(other, "dashboard"), "sha256:aaa").spec_hash
    assert before == after


def test_mounted_file_contents_move_the_hash_but_folders_do_not(config: StackConfig) -> None:
    body = container_body(config, _spec(config, "orchestrator"), "sha256:aaa")
    files = {"/run/x": b"one"}
    body["HostConfig"]["Mounts"].append(
        {"Type": "bind", "Source": "/run/x", "Target": "/x", "ReadOnly": True}
    )

    def reader(path: str) -> bytes | None:
        return files.get(path)

    first = spec_hash(body, reader)
    files["/run/x"] = b"two"
    assert spec_hash(body, reader) != first
    files["/elsewhere"] = b"unrelated"
    assert spec_hash(body, reader) == spec_hash(body, reader)


def test_nginx_conf_is_mounted_as_a_folder_so_its_change_is_not_a_recreate(
    config: StackConfig,
) -> None:
    rendered = Path(config.paths.data_dir) / "rendered"
    rendered.mkdir(parents=True)
    conf = rendered / "nginx.conf"
    conf.write_text("events {}\n")
    before = desired_container(config, _spec(config, "nginx"), "sha256:aaa").spec_hash
    conf.write_text("events { worker_connections 64; }\n")
    after = desired_container(config, _spec(config, "nginx"), "sha256:aaa").spec_hash
    assert before == after


def test_sizes_convert_to_bytes() -> None:
    assert size_in_bytes("512m") == 512 * 1024**2
    assert size_in_bytes("2g") == 2 * 1024**3
    assert size_in_bytes("100") == 100
