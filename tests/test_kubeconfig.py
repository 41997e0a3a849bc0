"""The kubeconfig `kube-shim up` writes: merged like kind does, private, readable by the real kubectl."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from shim.kubeconfig import default_kubeconfig_path, kubectl_hint, write_kubeconfig
from tests.prerequisites import kubectl_path, needs_kubectl

KUBECTL = kubectl_path()
CA_PEM = b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"
SERVER = "https://127.0.0.1:6443"

EXISTING = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {"colors": True},
    "clusters": [
        {"name": "kind-dev", "cluster": {"server": "https://127.0.0.1:40000"}},
        {"name": "kube-shim", "cluster": {"server": "https://old:1"}},
        {"name": "prod", "cluster": {"server": "https://prod.example:443"}},
    ],
    "users": [
        {"name": "kind-dev", "user": {"token": "kind-token"}},
        {"name": "kube-shim", "user": {"token": "stale"}},
    ],
    "contexts": [
        {"name": "kind-dev", "context": {"cluster": "kind-dev", "user": "kind-dev", "namespace": "apps"}},
        {"name": "kube-shim", "context": {"cluster": "kube-shim", "user": "kube-shim"}},
    ],
    "current-context": "kind-dev",
}


def _write_existing(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(EXISTING, sort_keys=False))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _names(config: dict, section: str) -> list[str]:
    return [entry["name"] for entry in config[section]]


def test_merging_replaces_only_our_entries_and_keeps_the_others_in_order(tmp_path: Path) -> None:
    path = tmp_path / ".kube" / "config"
    _write_existing(path)

    write_kubeconfig(path, SERVER, CA_PEM, "secret")

    config = _load(path)
    assert _names(config, "clusters") == ["kind-dev", "kube-shim", "prod"]
    assert _names(config, "users") == ["kind-dev", "kube-shim"]
    assert _names(config, "contexts") == ["kind-dev", "kube-shim"]
    assert config["clusters"][0] == EXISTING["clusters"][0]
    assert config["clusters"][2] == EXISTING["clusters"][2]
    assert config["contexts"][0] == EXISTING["contexts"][0]
    assert config["users"][0] == EXISTING["users"][0]
    assert config["preferences"] == {"colors": True}
    assert config["clusters"][1]["cluster"] == {
        "server": SERVER,
        "certificate-authority-data": base64.b64encode(CA_PEM).decode(),
    }
    assert config["users"][1]["user"] == {"token": "secret"}
    assert config["current-context"] == "kube-shim"


def test_a_first_write_appends_our_entries_after_the_existing_ones(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [EXISTING["clusters"][0]],
                "users": [EXISTING["users"][0]],
                "contexts": [EXISTING["contexts"][0]],
                "current-context": "kind-dev",
            }
        )
    )

    write_kubeconfig(path, SERVER, CA_PEM, "secret", set_current=False)

    config = _load(path)
    assert _names(config, "clusters") == ["kind-dev", "kube-shim"]
    assert _names(config, "contexts") == ["kind-dev", "kube-shim"]
    assert config["current-context"] == "kind-dev"


def test_without_merge_the_file_holds_only_our_entries(tmp_path: Path) -> None:
    path = tmp_path / "config"
    _write_existing(path)

    write_kubeconfig(path, SERVER, CA_PEM, "secret", merge=False)

    config = _load(path)
    assert _names(config, "clusters") == ["kube-shim"]
    assert _names(config, "users") == ["kube-shim"]
    assert _names(config, "contexts") == ["kube-shim"]
    assert config["current-context"] == "kube-shim"


def test_the_file_is_private_created_with_its_directories_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config"

    write_kubeconfig(path, SERVER, CA_PEM, "secret")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config"]


def test_a_client_certificate_user_carries_cert_and_key_data_and_no_token(tmp_path: Path) -> None:
    path = tmp_path / "config"

    write_kubeconfig(path, SERVER, CA_PEM, None, client_cert_pem=b"CERT", client_key_pem=b"KEY")

    assert _load(path)["users"] == [
        {
            "name": "kube-shim",
            "user": {
                "client-certificate-data": base64.b64encode(b"CERT").decode(),
                "client-key-data": base64.b64encode(b"KEY").decode(),
            },
        }
    ]


def test_a_user_without_token_or_certificate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_kubeconfig(tmp_path / "config", SERVER, CA_PEM, None)
    with pytest.raises(ValueError):
        write_kubeconfig(tmp_path / "config", SERVER, CA_PEM, None, client_cert_pem=b"CERT")
    assert not (tmp_path / "config").exists()


def test_a_held_lock_stops_the_write_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "config"
    _write_existing(path)
    before = path.read_bytes()
    (tmp_path / "config.lock").touch()

    with pytest.raises(RuntimeError, match=r"config\.lock"):
        write_kubeconfig(path, SERVER, CA_PEM, "secret")

    assert path.read_bytes() == before
    assert (tmp_path / "config.lock").exists()


@needs_kubectl
def test_kubectl_reads_the_merged_file_with_both_contexts(tmp_path: Path) -> None:
    path = tmp_path / "config"
    _write_existing(path)
    write_kubeconfig(path, SERVER, CA_PEM, "secret")

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    run = subprocess.run(
        [str(KUBECTL), "config", "get-contexts", "-o", "name", "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert run.stdout.split() == ["kind-dev", "kube-shim"]
    current = subprocess.run(
        [str(KUBECTL), "config", "current-context", "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert current.stdout.strip() == "kube-shim"


def test_the_default_path_follows_kubeconfig_like_kind(tmp_path: Path) -> None:
    existing = tmp_path / "exists"
    existing.touch()
    missing_a, missing_b = tmp_path / "missing-a", tmp_path / "missing-b"

    assert default_kubeconfig_path({"HOME": str(tmp_path)}) == tmp_path / ".kube" / "config"
    assert default_kubeconfig_path({"KUBECONFIG": str(missing_a)}) == missing_a
    joined = os.pathsep.join([str(missing_a), str(existing), str(missing_b)])
    assert default_kubeconfig_path({"KUBECONFIG": joined}) == existing
    assert default_kubeconfig_path({"KUBECONFIG": f"{missing_a}{os.pathsep}{missing_b}"}) == missing_b


def test_the_hint_names_the_context_for_the_default_file_and_the_path_otherwise(tmp_path: Path) -> None:
    default = tmp_path / ".kube" / "config"

    assert kubectl_hint(default, default) == "kubectl cluster-info --context kube-shim"
    assert kubectl_hint(tmp_path / "my config", default) == f"kubectl --kubeconfig '{tmp_path}/my config' get nodes"
