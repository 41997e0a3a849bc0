"""Reaching Services on a Podman cluster with its service proxy: a client pod to send from, and addresses the
test may send to only when this host handles them itself (traffic never leaves the machine)."""

from __future__ import annotations

import subprocess

from tests.cluster import Cluster
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT, apply, get
from tests.podman_cluster import NEVER_PULL


def client_pod(cluster: Cluster, namespace: str) -> str:
    """A Ready pod `client` (sleeping) to run commands in; its name."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"containers": [{"name": "c", "image": TEST_IMAGE, **NEVER_PULL, "command": ["sleep", "3600"]}],
                     "terminationGracePeriodSeconds": 0}}  # fmt: skip
    apply(cluster, namespace, body)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/client", "-n", namespace, WAIT_TIMEOUT)
    return "client"


def route_kind(address: str) -> str:
    """The first word of `ip route get`: `local` when this host handles the address itself."""
    return subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=True).stdout.split()[0]


def host_handles(address: str) -> str:
    """The address, once asserted to stay on this host."""
    assert route_kind(address) == "local", f"{address} would leave this host: {route_kind(address)}"
    return address


def cluster_ip(cluster: Cluster, namespace: str, name: str) -> str:
    """The Service's cluster IP (asserted to stay on this host)."""
    return host_handles(get(cluster, namespace, "service", name)["spec"]["clusterIP"])
