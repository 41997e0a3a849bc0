"""Two clusters on one host, as kind users run them: two `kube-shim up` (own data dirs and ports) sharing one
Podman root, each with a node named after the host. Neither removes, adopts or restarts the other's pods,
and each has its own network and subnet.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import podman
import pytest

from shim.pki import cluster_id
from shim.runtime.base import LABEL_CLUSTER, LABEL_NODE
from tests.cluster import Cluster, start_cluster
from tests.kubectl_kit import WAIT_TIMEOUT, json_of
from tests.podman_cluster import create_web, podman_node_flags, restart
from tests.podman_env import PodmanEnv, podman_root_with_test_image
from tests.prerequisites import needs_podman

pytestmark = needs_podman

Obj = dict[str, Any]


@pytest.fixture
def podman_env() -> Iterator[PodmanEnv]:
    with podman_root_with_test_image() as env:
        yield env


@pytest.fixture
def clusters(podman_env: PodmanEnv) -> Iterator[list[Cluster]]:
    """Two clusters whose nodes both take this host's name and share the one Podman root."""
    started: list[Cluster] = []
    try:
        for _ in range(2):
            cluster = start_cluster(Path(tempfile.mkdtemp(prefix="ks-")), nodes=podman_node_flags(podman_env))
            started.append(cluster)
            cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", WAIT_TIMEOUT)
        yield started
    finally:
        for cluster in started:
            cluster.stop()
            shutil.rmtree(cluster.data_dir, ignore_errors=True)


def identity(cluster: Cluster) -> str:
    return cluster_id((cluster.data_dir / "state" / "pki" / "ca.crt").read_bytes())


def web_pods(cluster: Cluster) -> dict[str, tuple[str, int]]:
    """The web pods of `cluster`: uid -> (container id, restart count)."""
    pods = json_of(cluster, "get", "pods", "-l", "app=web", "-n", "default")["items"]
    return {
        p["metadata"]["uid"]: (p["status"]["containerStatuses"][0]["containerID"],
                               p["status"]["containerStatuses"][0]["restartCount"])
        for p in pods
    }  # fmt: skip


def podman_pods(env: PodmanEnv, cluster: Cluster) -> dict[str, str]:
    """The cluster's Podman pods: pod uid label -> Podman pod id."""
    with podman.PodmanClient(base_url=env.base_url) as client:
        listed = client.pods.list(filters={"label": f"{LABEL_CLUSTER}={identity(cluster)}"})
        return {p.attrs["Labels"]["io.kubernetes.pod.uid"]: p.id for p in listed}


def test_two_clusters_on_one_host_leave_each_other_alone(clusters: list[Cluster], podman_env: PodmanEnv) -> None:
    first, second = clusters
    host = socket.gethostname()
    assert [json_of(c, "get", "nodes")["items"][0]["metadata"]["name"] for c in clusters] == [host, host]
    assert identity(first) != identity(second)

    for cluster in clusters:
        create_web(cluster, "default", replicas=2)
    running = {identity(c): (web_pods(c), podman_pods(podman_env, c)) for c in clusters}
    for pods, sandboxes in running.values():
        assert len(pods) == 2 and set(sandboxes) == set(pods)  # one Podman pod each, of its own cluster

    # a node agent starting (the moment it removes orphans) and running leaves the other cluster's pods be
    restart(first, podman_node_flags(podman_env))
    first.kubectl("rollout", "status", "deployment/web", "-n", "default", "--timeout=60s")
    restart(second, podman_node_flags(podman_env))
    second.kubectl("rollout", "status", "deployment/web", "-n", "default", "--timeout=60s")
    for cluster in clusters:
        pods, sandboxes = running[identity(cluster)]
        assert web_pods(cluster) == pods  # same containers, no restarts
        assert all(restarts == 0 for _, restarts in pods.values())
        assert podman_pods(podman_env, cluster) == sandboxes  # the very same Podman pods

    # each cluster's node has its own network, on its own /24
    with podman.PodmanClient(base_url=podman_env.base_url) as client:
        networks = {n.attrs["labels"][LABEL_CLUSTER]: n.attrs for n in client.networks.list() if n.attrs.get("labels")}
    assert set(networks) == {identity(first), identity(second)}
    assert all(n["labels"][LABEL_NODE] == host for n in networks.values())
    names = {n["name"] for n in networks.values()}
    subnets = [ipaddress.ip_network(n["subnets"][0]["subnet"]) for n in networks.values()]
    assert len(names) == 2 and not subnets[0].overlaps(subnets[1])
    for cluster in clusters:
        subnet = ipaddress.ip_network(networks[identity(cluster)]["subnets"][0]["subnet"])
        ips = [p["status"]["podIP"] for p in json_of(cluster, "get", "pods", "-l", "app=web")["items"]]
        assert all(ipaddress.ip_address(ip) in subnet for ip in ips), (ips, subnet)
