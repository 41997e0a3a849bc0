"""The cluster's address ranges, in a real `kube-shim up` driven with the real kubectl: ClusterIPs come from
`--service-cluster-ip-range`, and LoadBalancer Services get an address of `--load-balancer-ip-range` (the cloud
controller manager's role)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, start_cluster, wait_until

SERVICE_RANGE = "10.100.0.0/16"
RANGE = "10.112.0.8/30"  # two usable addresses: .9 and .10
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane with a service range of its own and a load-balancer range of two addresses."""
    ranges = ("--service-cluster-ip-range", SERVICE_RANGE, "--load-balancer-ip-range", RANGE)
    running = start_cluster(tmp_path_factory.mktemp("ranges"), extra=ranges)
    yield running
    running.stop()


def create_load_balancer(cluster: Cluster, namespace: str, name: str, **spec: object) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))


def ingress(cluster: Cluster, namespace: str, name: str) -> list[dict[str, str]]:
    out = cluster.kubectl("get", "service", name, "-n", namespace, "-o", "jsonpath={.status.loadBalancer}").stdout
    return (json.loads(out) if out else {}).get("ingress") or []


def address_of(cluster: Cluster, namespace: str, name: str) -> str:
    found = wait_until(lambda: ingress(cluster, namespace, name), TIMEOUT, f"an address for {name}")
    assert len(found) == 1 and found[0]["ipMode"] == "VIP", found
    return found[0]["ip"]


def reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    selector = f"involvedObject.name={name},involvedObject.kind=Service"
    out = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json").stdout
    return [event["reason"] for event in json.loads(out)["items"]]


def test_cluster_ips_come_from_the_service_range_the_first_for_the_kubernetes_service(
    cluster: Cluster, namespace: str
) -> None:
    get_ip = ("-o", "jsonpath={.spec.clusterIP}")
    assert cluster.kubectl("get", "service", "kubernetes", "-n", "default", *get_ip).stdout == "10.100.0.1"
    cluster.kubectl("create", "service", "clusterip", "web", "--tcp=80", "-n", namespace)
    assert ipaddress.ip_address(cluster.kubectl("get", "service", "web", "-n", namespace, *get_ip).stdout) in (
        ipaddress.ip_network(SERVICE_RANGE)
    )
    refused = cluster.kubectl("create", "service", "clusterip", "fixed", "--tcp=80", "--clusterip=10.96.0.50",
                              "-n", namespace, check=False)  # fmt: skip
    assert refused.returncode != 0 and "The range of valid IPs is 10.100.0.0/16" in refused.stderr


def test_load_balancers_get_the_first_free_addresses_and_say_so(cluster: Cluster, namespace: str) -> None:
    create_load_balancer(cluster, namespace, "first")
    assert address_of(cluster, namespace, "first") == "10.112.0.9"
    create_load_balancer(cluster, namespace, "second")
    assert address_of(cluster, namespace, "second") == "10.112.0.10"
    wait_until(lambda: "EnsuredLoadBalancer" in reasons(cluster, namespace, "second"), TIMEOUT, "the event")
    listed = cluster.kubectl("get", "service", "first", "-n", namespace).stdout
    assert "10.112.0.9" in listed.splitlines()[1]  # kubectl's EXTERNAL-IP column

    # the range is used up: the third waits, pending, and says why
    create_load_balancer(cluster, namespace, "third")
    wait_until(lambda: "SyncLoadBalancerFailed" in reasons(cluster, namespace, "third"), TIMEOUT, "the warning")
    assert ingress(cluster, namespace, "third") == []
    assert "<pending>" in cluster.kubectl("get", "service", "third", "-n", namespace).stdout

    # a Service that stops being a LoadBalancer gives its address to the one waiting
    cluster.kubectl("patch", "service", "first", "-n", namespace, "-p", '{"spec":{"type":"ClusterIP"}}')
    assert address_of(cluster, namespace, "third") == "10.112.0.9"
    assert ingress(cluster, namespace, "first") == []

    # and a deleted one too
    cluster.kubectl("delete", "service", "second", "-n", namespace)
    create_load_balancer(cluster, namespace, "fourth")
    assert address_of(cluster, namespace, "fourth") == "10.112.0.10"
    cluster.kubectl("delete", "service", "third", "fourth", "-n", namespace)


def test_a_load_balancer_of_another_class_is_left_to_its_own_implementation(cluster: Cluster, namespace: str) -> None:
    create_load_balancer(cluster, namespace, "other", loadBalancerClass="example.com/other")
    create_load_balancer(cluster, namespace, "mine")
    address_of(cluster, namespace, "mine")  # the controller has seen both by now (watch events come in order)
    assert ingress(cluster, namespace, "other") == []
    assert reasons(cluster, namespace, "other") == []
