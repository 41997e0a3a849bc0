"""Cluster DNS seen from real pods: the real `kube-shim up` with one Podman node, whose pods get kube's
resolv.conf and ask the kube-dns Service's ClusterIP, which the service proxy carries to the DNS server on the
pods' host address (issue 10).

The cluster has service and load-balancer ranges of its own (other clusters on this host keep theirs), and
forwards to a fake upstream on 127.0.0.1, so no query leaves the machine. A ClusterIP is asked only once
`ip route get` shows this host handles it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import podman
import pytest

from tests.cluster import Cluster, start_cluster, wait_until
from tests.dns_upstream import UPSTREAM_ZONE, FakeUpstream
from tests.images import ensure_test_image
from tests.kubectl_kit import apply, from_pod, get
from tests.podman_cluster import restart
from tests.podman_env import PodmanEnv
from tests.prerequisites import needs_podman
from tests.proxy_kit import client_pod, host_handles

pytestmark = needs_podman

SERVICE_RANGE = "10.104.0.0/16"
LOAD_BALANCER_RANGE = "10.112.0.176/28"
DNS_IP = str(ipaddress.IPv4Network(SERVICE_RANGE).network_address + 10)
HOST_ADDRESS = "10.244.255.254"
DOMAIN = "cluster.local"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def flags(dns_upstream: FakeUpstream) -> Iterator[tuple[str, ...]]:
    """The cluster's flags: one Podman node on a private Podman root, its own ranges, the fake upstream."""
    with PodmanEnv() as env:
        with podman.PodmanClient(base_url=env.base_url) as client:
            ensure_test_image(client)
        yield ("--runtime", "podman", "--nodes", "1", "--podman-socket", str(env.socket_path),
               "--service-cluster-ip-range", SERVICE_RANGE, "--load-balancer-ip-range", LOAD_BALANCER_RANGE,
               "--dns-upstream", f"127.0.0.1:{dns_upstream.port}")  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, flags: tuple[str, ...]) -> Iterator[Cluster]:
    """`kube-shim up` with one Podman node (replaces the session's cluster here, so the `namespace` fixture makes
    its namespaces in it)."""
    running = start_cluster(tmp_path_factory.mktemp("dns-podman"), nodes=flags)
    try:
        running.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        yield running
    finally:
        running.stop()


def test_the_kube_dns_endpoints_name_the_server_on_the_pods_host_address(cluster: Cluster) -> None:
    service = get(cluster, "kube-system", "service", "kube-dns")
    assert service["spec"]["clusterIP"] == DNS_IP
    port = service["spec"]["ports"][0]["targetPort"]
    endpoints = get(cluster, "kube-system", "endpoints", "kube-dns")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": HOST_ADDRESS}]
    assert {(p["name"], p["port"], p["protocol"]) for p in endpoints["subsets"][0]["ports"]} == {
        ("dns", port, "UDP"),
        ("dns-tcp", port, "TCP"),
    }
    slices = get(cluster, "kube-system", "endpointslices", "-l", "kubernetes.io/service-name=kube-dns")["items"]
    assert [s["endpoints"][0]["addresses"] for s in slices] == [[HOST_ADDRESS]]


def test_a_cluster_first_pod_gets_kubes_resolv_conf(cluster: Cluster, namespace: str) -> None:
    pod = client_pod(cluster, namespace)
    lines = from_pod(cluster, namespace, pod, "cat /etc/resolv.conf").splitlines()
    assert f"nameserver {DNS_IP}" in lines
    assert f"search {namespace}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}" in lines
    assert "options ndots:5" in lines
    assert not any(line.startswith("nameserver") and DNS_IP not in line for line in lines), lines


def test_a_pod_resolves_services_by_short_and_full_name_a_headless_service_and_forwarded_names(
    cluster: Cluster, namespace: str
) -> None:
    host_handles(DNS_IP)
    pod = client_pod(cluster, namespace)
    apply(
        cluster,
        namespace,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "peers"},
            "spec": {"clusterIP": "None", "selector": {"app": "client"}, "ports": [{"port": 80}]},
        },
    )
    cluster.kubectl("label", "pod", pod, "-n", namespace, "app=client")
    web_ip = get(cluster, namespace, "service", "web")["spec"]["clusterIP"]
    pod_ip = get(cluster, namespace, "pod", pod)["status"]["podIP"]

    # busybox's nslookup applies the search list to dotless names only (libc resolvers go by ndots:5, which
    # test_dns.py's resolv.conf checks cover): `web` and the full name
    for name in ("web", f"web.{namespace}.svc.{DOMAIN}"):
        wait_until(lambda n=name: resolves(cluster, namespace, pod, n, web_ip), TIMEOUT, f"{name} to resolve")
    wait_until(lambda: resolves(cluster, namespace, pod, f"peers.{namespace}.svc.{DOMAIN}", pod_ip), TIMEOUT,
               "the headless service")  # fmt: skip
    # forwarded to the upstream, through the cluster DNS
    assert resolves(cluster, namespace, pod, f"33.{UPSTREAM_ZONE}", "192.0.2.33")


def test_an_unknown_service_name_fails_from_a_pod(cluster: Cluster, namespace: str) -> None:
    pod = client_pod(cluster, namespace)
    out = from_pod(cluster, namespace, pod, f"nslookup nothing.{namespace}.svc.{DOMAIN} 2>&1; echo rc=$?", check=False)
    assert "NXDOMAIN" in out and "rc=1" in out, out


def test_after_a_restart_pods_resolve_again_through_the_same_dns_port(
    cluster: Cluster, namespace: str, flags: tuple[str, ...]
) -> None:
    """Last in the module: it restarts the module's cluster."""
    pod = client_pod(cluster, namespace)
    apply(cluster, namespace, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                               "spec": {"ports": [{"port": 80}]}})  # fmt: skip
    web_ip = get(cluster, namespace, "service", "web")["spec"]["clusterIP"]
    wait_until(lambda: resolves(cluster, namespace, pod, "web", web_ip), TIMEOUT, "web to resolve")
    port = get(cluster, "kube-system", "endpoints", "kube-dns")["subsets"][0]["ports"][0]["port"]

    restart(cluster, flags)
    assert get(cluster, "kube-system", "endpoints", "kube-dns")["subsets"][0]["ports"][0]["port"] == port
    wait_until(lambda: resolves(cluster, namespace, pod, "web", web_ip), TIMEOUT, "web to resolve after the restart")


def resolves(cluster: Cluster, namespace: str, pod: str, name: str, address: str) -> bool:
    """Whether busybox's nslookup in the pod answers `address` for `name`."""
    out = from_pod(cluster, namespace, pod, f"nslookup {name}", check=False)
    return address in out.split("Name:", 1)[-1]
