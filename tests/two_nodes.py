"""Two Podman node agents on one host, for tests that need pods on two nodes: `kube-shim up` with its node
`node-a`, plus `node-b` as a separate `kube-shim node` process with its own data dir and pod range, sharing
the Podman root."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, launch, start_cluster
from tests.kubectl_kit import WAIT_TIMEOUT
from tests.podman_cluster import podman_node_flags
from tests.podman_env import PodmanEnv

FIRST, SECOND = "node-a", "node-b"


def cluster_on_two_podman_nodes(name: str) -> Any:
    """A module-scoped `cluster` fixture: `kube-shim up` with node-a, and node-b as its own `kube-shim node`
    process on the module's `podman_env` (its data dir named `name`); it replaces the session's cluster there."""

    @pytest.fixture(scope="module")
    def cluster(podman_env: PodmanEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        with two_podman_nodes(podman_env, tmp_path_factory.mktemp(name)) as running:
            yield running

    return cluster


@contextlib.contextmanager
def two_podman_nodes(env: PodmanEnv, data_dir: Path) -> Iterator[Cluster]:
    """The running cluster once both nodes are Ready; both processes are stopped on exit."""
    running = start_cluster(data_dir, nodes=(*podman_node_flags(env), "--name", FIRST))
    certs = [sys.executable, "-m", "shim.cli", "certs", "node", SECOND, "--data-dir", str(data_dir / "state"),
             "--address", "127.0.0.1"]  # fmt: skip
    tls_flags = subprocess.run(certs, capture_output=True, text=True, check=True, timeout=30).stdout.split()
    node_flags = (
        "--runtime",
        "podman",
        "--name",
        SECOND,
        "--node-ip",
        "127.0.0.1",
        "--data-dir",
        str(data_dir / SECOND),
    )
    second = launch(running, "node", *node_flags, "--podman-socket", str(env.socket_path), *tls_flags)
    try:
        running.kubectl("wait", "--for=create", f"node/{SECOND}", WAIT_TIMEOUT)
        running.kubectl("wait", "--for=condition=Ready", "node", "--all", WAIT_TIMEOUT)
        yield running
    finally:
        second.terminate()
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
        running.stop()
