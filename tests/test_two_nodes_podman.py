"""Two Podman node agents on one host: `kube-shim up` with its node, plus a second `kube-shim node` process with
its own data dir and pod range, sharing the Podman root. A pod on each reaches the other by pod IP and through
a Service, and sees the other's own address (no NAT between pod ranges).

Traffic goes only to the pods and services this test created (ClusterIPs after checking the host owns them).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from shim.hostaddress import RESERVED_RANGE, is_local_address
from shim.runtime.podman_network import POD_NETWORK_RANGE
from tests import podman_cluster
from tests.cluster import Cluster, wait_until
from tests.images import TEST_IMAGE
from tests.kubectl_kit import WAIT_TIMEOUT, json_of
from tests.prerequisites import needs_podman
from tests.two_nodes import FIRST, SECOND, cluster_on_two_podman_nodes

pytestmark = needs_podman

Obj = dict[str, Any]
# busybox httpd answering /cgi-bin/peer with the address the request came from
ECHO_PEER = (
    "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' "
    "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 80 -h /www"
)

# the module's fixtures, bound by name so pytest finds them here
podman_env = podman_cluster.podman_env
cluster = cluster_on_two_podman_nodes("two-nodes")


def echo_pod(name: str, node: str) -> Obj:
    container = {"name": "echo", "image": TEST_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", ECHO_PEER]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [container], "terminationGracePeriodSeconds": 1},
    }


def ask_peer(cluster: Cluster, namespace: str, client: str, address: str) -> str:
    """What the echo server at `address` saw as the address of pod `client`'s request."""
    request = f"printf 'GET /cgi-bin/peer HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address} 80"
    reply = cluster.kubectl("exec", client, "-n", namespace, "--", "sh", "-c", request).stdout
    peer = ipaddress.ip_address(reply.strip().splitlines()[-1].strip("[]"))  # httpd listens dual-stack
    return str(peer.ipv4_mapped if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped else peer)


def test_each_node_has_its_own_pod_range(cluster: Cluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in json_of(cluster, "get", "nodes")["items"]}
    ranges = {name: ipaddress.ip_network(nodes[name]["spec"]["podCIDR"]) for name in (FIRST, SECOND)}
    assert ranges[FIRST] != ranges[SECOND]
    for cidr in ranges.values():
        assert cidr.subnet_of(POD_NETWORK_RANGE) and cidr.prefixlen == 24
        assert not cidr.overlaps(RESERVED_RANGE)  # the pods' host address lives there


def test_pods_on_two_nodes_reach_each_other_by_pod_ip_without_nat(cluster: Cluster, namespace: str) -> None:
    for name, node in (("a", FIRST), ("b", SECOND)):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(echo_pod(name, node)))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/a", "pod/b", "-n", namespace, WAIT_TIMEOUT)
    pods = {p["metadata"]["name"]: p for p in json_of(cluster, "get", "pods", "-n", namespace)["items"]}
    ip = {name: pods[name]["status"]["podIP"] for name in ("a", "b")}
    nodes = {n["metadata"]["name"]: n for n in json_of(cluster, "get", "nodes")["items"]}
    for name, node in (("a", FIRST), ("b", SECOND)):
        assert pods[name]["spec"]["nodeName"] == node
        assert ipaddress.ip_address(ip[name]) in ipaddress.ip_network(nodes[node]["spec"]["podCIDR"])

    assert ask_peer(cluster, namespace, "a", ip["b"]) == ip["a"]
    assert ask_peer(cluster, namespace, "b", ip["a"]) == ip["b"]


def test_a_pod_reaches_a_pod_on_the_other_node_through_a_service(cluster: Cluster, namespace: str) -> None:
    for name, node in (("c", FIRST), ("d", SECOND)):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(echo_pod(name, node)))
        cluster.kubectl("expose", "pod", name, "--port", "80", "-n", namespace)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/c", "pod/d", "-n", namespace, WAIT_TIMEOUT)
    pods = {p["metadata"]["name"]: p for p in json_of(cluster, "get", "pods", "-n", namespace)["items"]}
    services = {s["metadata"]["name"]: s for s in json_of(cluster, "get", "services", "-n", namespace)["items"]}
    for client, server in (("c", "d"), ("d", "c")):
        cluster_ip = services[server]["spec"]["clusterIP"]
        assert is_local_address(cluster_ip), "the proxy makes the service range the host's own"

        def answered(client: str = client, cluster_ip: str = cluster_ip) -> str | None:
            try:  # refused at once until the endpoint is programmed
                return ask_peer(cluster, namespace, client, cluster_ip)
            except AssertionError:
                return None

        seen = wait_until(answered, timeout=30, what=f"{server}'s ClusterIP to answer {client}")
        assert seen == pods[client]["status"]["podIP"]  # the service keeps the client's own address
