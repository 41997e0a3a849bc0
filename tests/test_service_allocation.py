"""Services get node ports and cluster IPs as kube-apiserver allocates them: from 30000-32767 and 10.96.0.0/12,
each value held by one Service at a time, released when the Service goes or stops needing it.

Messages are kube's (`pkg/registry/core/service/storage/alloc.go` and the port allocator's errors), through the
real kubectl.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from tests.cluster import Cluster


def service(cluster: Cluster, namespace: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "service", name, "-n", namespace, "-o", "json").stdout)


def apply(cluster: Cluster, namespace: str, manifest: dict, check: bool = True):
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=check)


def node_port_service(name: str, node_port: int | None = None, kind: str = "NodePort") -> dict:
    port: dict = {"port": 80, "targetPort": 8080, "protocol": "TCP"}
    if node_port is not None:
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": name}, "ports": [port]}}  # fmt: skip


def test_a_nodeport_service_gets_a_node_port_from_the_range(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "service", "nodeport", "np", "--tcp=8080:80", "-n", namespace)
    port = service(cluster, namespace, "np")["spec"]["ports"][0]
    assert 30000 <= port["nodePort"] <= 32767
    listed = cluster.kubectl("get", "service", "np", "-n", namespace).stdout
    assert f"8080:{port['nodePort']}/TCP" in listed


def test_a_load_balancer_gets_node_ports_unless_it_opts_out(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, node_port_service("lb", kind="LoadBalancer"))
    assert 30000 <= service(cluster, namespace, "lb")["spec"]["ports"][0]["nodePort"] <= 32767
    opted_out = node_port_service("lb2", kind="LoadBalancer")
    opted_out["spec"]["allocateLoadBalancerNodePorts"] = False
    apply(cluster, namespace, opted_out)
    assert "nodePort" not in service(cluster, namespace, "lb2")["spec"]["ports"][0]


def test_a_node_port_is_held_by_one_service_and_released_on_delete(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, node_port_service("first", 30080))
    refused = apply(cluster, namespace, node_port_service("second", 30080), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'The Service "second" is invalid: '
        "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    )
    cluster.kubectl("delete", "service", "first", "-n", namespace)
    apply(cluster, namespace, node_port_service("second", 30080))
    assert service(cluster, namespace, "second")["spec"]["ports"][0]["nodePort"] == 30080


def test_a_node_port_outside_the_range_is_refused(cluster: Cluster, namespace: str) -> None:
    refused = cluster.kubectl(
        "create", "service", "nodeport", "bad", "--tcp=80:80", "--node-port=29999", "-n", namespace, check=False
    )
    assert refused.stderr.strip() == (
        'error: failed to create NodePort service: Service "bad" is invalid: spec.ports[0].nodePort: '
        "Invalid value: 29999: provided port is not in the valid range. The range of valid ports is 30000-32767"
    )


def test_changing_type_to_cluster_ip_releases_the_node_port(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, node_port_service("np", 30081))
    to_cluster_ip = {"spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080, "nodePort": None}]}}
    cluster.kubectl("patch", "service", "np", "-n", namespace, "--type=merge", "-p", json.dumps(to_cluster_ip))
    assert "nodePort" not in service(cluster, namespace, "np")["spec"]["ports"][0]
    apply(cluster, namespace, node_port_service("other", 30081))
    cluster.kubectl(
        "patch", "service", "np", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"type": "NodePort"}})
    )
    port = service(cluster, namespace, "np")["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767 and port != 30081


def test_concurrent_creates_never_share_a_node_port(cluster: Cluster, namespace: str) -> None:
    def create(i: int) -> None:
        apply(cluster, namespace, node_port_service(f"s{i}"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(16)))
    listed = json.loads(cluster.kubectl("get", "services", "-n", namespace, "-o", "json").stdout)["items"]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in listed]
    ips = [s["spec"]["clusterIP"] for s in listed]
    assert len(ports) == 16 and len(set(ports)) == 16
    assert len(set(ips)) == 16


def test_a_cluster_ip_outside_the_service_range_is_refused(cluster: Cluster, namespace: str) -> None:
    refused = cluster.kubectl(
        "create", "service", "clusterip", "test", "--clusterip", "192.168.1.1", "--tcp=80:80", "-n", namespace,
        check=False,
    )  # fmt: skip
    assert refused.stderr.strip() == (
        'error: failed to create ClusterIP service: Service "test" is invalid: spec.clusterIPs: '
        'Invalid value: []string{"192.168.1.1"}: failed to allocate IP 192.168.1.1: the provided IP (192.168.1.1) '
        "is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    )


def test_a_cluster_ip_is_held_by_one_service(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "service", "clusterip", "a", "--clusterip", "10.96.7.7", "--tcp=80:80", "-n", namespace)
    refused = cluster.kubectl(
        "create", "service", "clusterip", "b", "--clusterip", "10.96.7.7", "--tcp=80:80", "-n", namespace, check=False
    )
    assert refused.stderr.strip() == (
        'error: failed to create ClusterIP service: Service "b" is invalid: spec.clusterIPs: '
        'Invalid value: []string{"10.96.7.7"}: failed to allocate IP 10.96.7.7: provided IP is already allocated'
    )
