"""The node server is never open, and the API server trusts a node server only with a certificate the cluster
CA issued for the address it dials (kube-apiserver's `--kubelet-certificate-authority`).

Every exec, attach and log goes to the address a node writes into its own Node status; without these checks a
node could stand in for another, or anyone on the network could exec into every pod.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shim.pki import ensure_node_certificate, ensure_pki
from tests.cluster import Cluster
from tests.streamnode import StreamNode, register_node, start_pod

NODE_COMMAND_DEADLINE = 30.0


def kube_shim(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shim.cli", *args]
    env = dict(os.environ, HOME=str(home))
    return subprocess.run(command, capture_output=True, text=True, timeout=NODE_COMMAND_DEADLINE, env=env)


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed (and it printed nothing else)."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture
def node_certificate(cluster: Cluster, tmp_path: Path) -> list[str]:
    """`--tls-cert-file` and `--tls-private-key-file` of a certificate the cluster CA issued."""
    issued = kube_shim("certs", "node", "remote", "--data-dir", str(cluster.data_dir / "state"),
                       "--address", "127.0.0.1", home=tmp_path)  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.split()


def test_a_node_without_the_cluster_ca_refuses_to_start(
    cluster: Cluster, tmp_path: Path, node_certificate: list[str]
) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    without_ca = tmp_path / "no-ca.kubeconfig"
    without_ca.write_text(yaml.safe_dump(config))

    result = kube_shim("node", "--kubeconfig", str(without_ca), "--runtime", "fake", "--name", "open",
                       "--data-dir", str(tmp_path / "node"), *node_certificate, home=tmp_path)  # fmt: skip
    assert "holds no certificate-authority data" in refusal(result)
    assert "open" not in cluster.kubectl("get", "nodes", "-o", "name").stdout  # it never registered


def test_a_node_without_a_serving_certificate_refuses_to_start(cluster: Cluster, tmp_path: Path) -> None:
    common = ("node", "--kubeconfig", str(cluster.kubeconfig), "--runtime", "fake", "--name", "uncertified",
              "--data-dir", str(tmp_path / "node"))  # fmt: skip
    missing = kube_shim(*common, home=tmp_path)
    assert "needs --tls-cert-file and --tls-private-key-file" in refusal(missing)
    absent = tmp_path / "absent.crt"
    wrong = kube_shim(*common, "--tls-cert-file", str(absent), "--tls-private-key-file", str(absent), home=tmp_path)
    assert f"{absent}: no such file" in refusal(wrong)


def test_certificates_are_issued_only_for_valid_node_names(cluster: Cluster, tmp_path: Path) -> None:
    result = kube_shim("certs", "node", "../escape", "--data-dir", str(cluster.data_dir / "state"),
                       "--address", "127.0.0.1", home=tmp_path)  # fmt: skip
    assert "is not a valid node name" in refusal(result)
    elsewhere = kube_shim("certs", "node", "n1", "--data-dir", str(tmp_path / "empty"), "--address", "127.0.0.1",
                          home=tmp_path)  # fmt: skip
    assert "holds no cluster CA" in refusal(elsewhere)


@pytest.fixture
def impostor(cluster: Cluster, tmp_path: Path) -> Iterator[StreamNode]:
    """A node server whose certificate another CA issued (a self-made one is refused alike)."""
    name = "impostor-" + uuid.uuid4().hex[:6]
    ensure_pki(tmp_path / "other-cluster", [])
    certificate = ensure_node_certificate(tmp_path / "other-cluster", name, ["127.0.0.1"])
    node = StreamNode(name, tmp_path / "node", cluster, serving_certificate=certificate)
    register_node(cluster, node)
    yield node
    node.stop()


@pytest.fixture
def elsewhere(cluster: Cluster, tmp_path: Path) -> Iterator[StreamNode]:
    """A node server at 127.0.0.2 with a cluster certificate for 127.0.0.1: another node's address."""
    name = "elsewhere-" + uuid.uuid4().hex[:6]
    certificate = ensure_node_certificate(cluster.data_dir / "state", name, ["127.0.0.1"])
    node = StreamNode(name, tmp_path / "node", cluster, serving_certificate=certificate, host="127.0.0.2")
    register_node(cluster, node)
    yield node
    node.stop()


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_the_api_server_refuses_a_node_certificate_of_another_ca(
    cluster: Cluster, impostor: StreamNode, namespace: str, version: str
) -> None:
    start_pod(cluster, impostor, namespace, "victim", [{"name": "main", "image": "busybox"}])
    expected = "error dialing backend: tls: failed to verify certificate: x509: certificate signed by unknown authority"

    logs = cluster.kubectl("logs", "-n", namespace, "victim", version=version, check=False)
    assert logs.returncode == 1 and logs.stdout == ""
    assert f"Error from server (InternalError): {expected}" in logs.stderr
    executed = cluster.kubectl("exec", "-n", namespace, "victim", "--", "true", version=version, check=False)
    assert executed.returncode == 1 and expected in executed.stderr

    raw = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/victim/log", "-v=6", check=False)
    assert raw.returncode == 1 and "500 Internal Server Error" in raw.stderr


def test_the_api_server_refuses_a_node_certificate_for_another_address(
    cluster: Cluster, elsewhere: StreamNode, namespace: str
) -> None:
    start_pod(cluster, elsewhere, namespace, "moved", [{"name": "main", "image": "busybox"}])
    node = json.loads(cluster.kubectl("get", "node", elsewhere.name, "-o", "json").stdout)
    assert node["status"]["addresses"] == [{"type": "InternalIP", "address": "127.0.0.2"}]

    logs = cluster.kubectl("logs", "-n", namespace, "moved", check=False)
    assert logs.returncode == 1
    assert "tls: failed to verify certificate: x509: IP address mismatch" in logs.stderr
    assert "127.0.0.2" in logs.stderr
