"""Every component is an API client: the scheduler, the controllers and node agents run as their own
processes against an API server that runs alone, and the cluster still works."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster, launch, start_cluster, wait_until


@pytest.fixture
def separate_processes(tmp_path: Path) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path, nodes=("--nodes", "0", "--no-scheduler", "--no-controllers"))
    # the node server's certificate, issued from the cluster's data dir as `kube-shim node --help` says
    certs = [sys.executable, "-m", "shim.cli", "certs", "node", "remote", "--data-dir", str(tmp_path / "state"),
             "--address", "127.0.0.1"]  # fmt: skip
    tls_flags = subprocess.run(certs, capture_output=True, text=True, check=True, timeout=30).stdout.split()
    processes = [
        launch(cluster, "controller-manager"),
        launch(cluster, "scheduler"),
        launch(cluster, "node", "--runtime", "fake", "--nodes", "2", "--name", "remote", "--node-ip", "127.0.0.1",
               "--data-dir", str(tmp_path / "node"), *tls_flags),
    ]  # fmt: skip
    yield cluster
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            assert process.wait(20) == 0, process.stdout.read() if process.stdout else ""
        finally:
            if process.poll() is None:
                process.kill()
    cluster.stop()


def test_a_deployment_runs_with_each_component_in_its_own_process(separate_processes: Cluster) -> None:
    cluster = separate_processes

    def ready_nodes() -> list[str]:
        items = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return [
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        ]

    assert sorted(wait_until(lambda: len(ready_nodes()) == 2 and ready_nodes(), what="two Ready nodes")) == [
        "remote-0",
        "remote-1",
    ]
    cluster.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=4")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(pods) == 4
    assert {p["spec"]["nodeName"] for p in pods} <= {"remote-0", "remote-1"}
    assert all(p["status"]["phase"] == "Running" for p in pods)
    cluster.kubectl("delete", "deployment", "web")
    wait_until(
        lambda: not json.loads(cluster.kubectl("get", "pods,rs", "-l", "app=web", "-o", "json").stdout)["items"],
        what="the garbage collector to remove the replicaset and pods",
    )
