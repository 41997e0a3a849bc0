"""UDP flows to removed service endpoints are deleted after a sync (kube-proxy's conntrack clean-up): which
targets the rules DNAT to, what a change of them makes stale, and the real `conntrack` tool deleting exactly
those flows from the kernel's table (entries made with `conntrack -I` for addresses of the benchmarking range
198.18.0.0/15, which no traffic uses)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator

import pytest

from shim.proxy.conntrack import FlowFilter, StaleFlowCleaner, listed_target, stale_flows, udp_service_keys
from shim.proxy.rules import ServicePort, Target, service_ports, service_targets
from tests.prerequisites import needs_conntrack
from tests.proxy_objects import NODE, endpoint, endpoint_slice, service

DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]  # fmt: skip
DNS_SLICE_PORTS = [{"name": "dns", "port": 5353, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}]  # fmt: skip


def dns_ports(*endpoints: dict, slice_port: int = 5353, **spec: object) -> list[ServicePort]:
    slice_ports = [dict(p, port=slice_port) for p in DNS_SLICE_PORTS]
    svc = service("dns", "10.96.0.10", DNS_PORTS, type="NodePort", **spec)
    return service_ports([svc], [endpoint_slice("dns", list(endpoints), slice_ports)])


def udp(address: str | None, port: int, endpoint_ip: str, endpoint_port: int = 5353) -> Target:
    return Target("udp", address, port, endpoint_ip, endpoint_port)


# -- what the rules DNAT to --------------------------------------------------------------------------------------


def test_targets_are_every_service_address_and_node_port_with_each_ready_endpoint() -> None:
    status = {"loadBalancer": {"ingress": [{"ip": "10.112.0.1"}]}}
    ports = dns_ports(endpoint("10.244.1.2"), endpoint("10.244.1.3"), endpoint("10.244.1.4", ready=False),
                      status=status)  # fmt: skip
    targets = service_targets(ports, NODE)
    assert {t for t in targets if t.protocol == "udp"} == {
        udp(address, port, ip)
        for address, port in (("10.96.0.10", 53), ("10.112.0.1", 53), (None, 30053))
        for ip in ("10.244.1.2", "10.244.1.3")
    }
    assert Target("tcp", "10.96.0.10", 53, "10.244.1.2", 5353) in targets


def test_a_service_without_ready_endpoints_has_no_targets_and_local_policies_narrow_them() -> None:
    assert service_targets(dns_ports(endpoint("10.244.1.2", ready=False)), NODE) == frozenset()
    ports = dns_ports(endpoint("10.244.1.2"), endpoint("10.244.2.2", node="node-b"), internalTrafficPolicy="Local")
    cluster_ip = {t.endpoint_ip for t in service_targets(ports, NODE) if t.address == "10.96.0.10"}
    assert cluster_ip == {"10.244.1.2"}
    node_port = {t.endpoint_ip for t in service_targets(ports, NODE) if t.address is None}
    assert node_port == {"10.244.1.2", "10.244.2.2"}  # the external policy is Cluster


# -- what a change makes stale -----------------------------------------------------------------------------------


def test_a_removed_udp_endpoint_makes_its_flows_stale_on_every_address_and_node_port() -> None:
    before = service_targets(dns_ports(endpoint("10.244.1.2"), endpoint("10.244.1.3")), NODE)
    after = service_targets(dns_ports(endpoint("10.244.1.3")), NODE)
    assert stale_flows(before, after) == [
        FlowFilter(30053, None, "10.244.1.2", 5353),  # node port: any address
        FlowFilter(53, "10.96.0.10", "10.244.1.2", 5353),
    ]  # and nothing of TCP: a dead endpoint resets or times out the connection, the client reconnects


def test_an_endpoint_moving_to_another_port_makes_flows_to_its_old_port_stale() -> None:
    # the cluster DNS restarted on another port of the same host address
    before = service_targets(dns_ports(endpoint("10.244.255.254"), slice_port=40001), NODE)
    after = service_targets(dns_ports(endpoint("10.244.255.254"), slice_port=40002), NODE)
    filters = stale_flows(before, after)
    assert FlowFilter(53, "10.96.0.10", "10.244.255.254", 40001) in filters
    assert all(f.reply_port == 40001 for f in filters)


def test_a_udp_service_that_gets_its_first_endpoint_loses_all_its_flows() -> None:
    before = service_targets(dns_ports(endpoint("10.244.1.2", ready=False)), NODE)
    after = service_targets(dns_ports(endpoint("10.244.1.2")), NODE)
    assert stale_flows(before, after) == [FlowFilter(30053), FlowFilter(53, "10.96.0.10")]
    assert FlowFilter(53, "10.96.0.10").arguments() == ["conntrack", "-D", "-p", "udp", "--orig-dst",
                                                         "10.96.0.10", "--orig-port-dst", "53"]  # fmt: skip


def test_unchanged_targets_and_added_endpoints_make_nothing_stale() -> None:
    one = service_targets(dns_ports(endpoint("10.244.1.2")), NODE)
    two = service_targets(dns_ports(endpoint("10.244.1.2"), endpoint("10.244.1.3")), NODE)
    assert stale_flows(one, one) == [] and stale_flows(one, two) == []


def test_a_listing_yields_the_dnated_flows_to_service_addresses_and_node_ports() -> None:
    keys = udp_service_keys(dns_ports(endpoint("10.244.1.2")))
    assert keys == {("10.96.0.10", 53), (None, 30053)}
    line = ("udp      17 29 src=10.244.0.5 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED] src=10.244.1.9 "
            "dst=10.244.0.5 sport=5353 dport=40000 mark=0 use=1")  # fmt: skip
    assert listed_target(line, keys) == udp("10.96.0.10", 53, "10.244.1.9")
    node_port = line.replace("dst=10.96.0.10", "dst=192.0.2.7").replace("dport=53", "dport=30053")
    assert listed_target(node_port, keys) == udp(None, 30053, "10.244.1.9")
    not_dnated = line.replace("src=10.244.1.9", "src=10.96.0.10").replace("sport=5353", "sport=53")
    other_service = line.replace("dport=53", "dport=54")
    for ignored in (not_dnated, other_service, "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown."):
        assert listed_target(ignored, keys) is None


# -- the real conntrack tool -------------------------------------------------------------------------------------

CLUSTER_IP = "198.18.0.10"  # the test's service address; endpoints and clients in 198.19.0.0/16


@pytest.fixture
def flows() -> Iterator[None]:
    """Deletes every flow to CLUSTER_IP the test made or left."""
    yield
    subprocess.run(["conntrack", "-D", "-p", "udp", "--orig-dst", CLUSTER_IP], capture_output=True, check=False)


def make_flow(endpoint_ip: str, client_port: int, endpoint_port: int) -> None:
    """A flow from 198.19.0.1:`client_port` to CLUSTER_IP:53 as if DNATed to `endpoint_ip`:`endpoint_port`."""
    subprocess.run(["conntrack", "-I", "-p", "udp", "-s", "198.19.0.1", "-d", CLUSTER_IP, "--sport",
                    str(client_port), "--dport", "53", "--reply-src", endpoint_ip, "--reply-dst", "198.19.0.1",
                    "--reply-port-src", str(endpoint_port), "--reply-port-dst", str(client_port), "-t", "120"],
                   capture_output=True, check=True)  # fmt: skip


def live_endpoints() -> set[tuple[str, int]]:
    """(endpoint address, port) of every flow to CLUSTER_IP that the kernel still holds."""
    listing = subprocess.run(["conntrack", "-L", "-p", "udp", "--orig-dst", CLUSTER_IP], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    keys = {(CLUSTER_IP, 53)}
    return {(t.endpoint_ip, t.endpoint_port) for line in listing.splitlines() if (t := listed_target(line, keys))}


def cluster_dns(*endpoint_ports: int) -> list[ServicePort]:
    """The test's DNS service, its endpoint on 198.19.1.1 at each of `endpoint_ports`."""
    svc = service("dns", CLUSTER_IP, [{"name": "dns", "port": 53, "protocol": "UDP"}])
    slices = [endpoint_slice("dns", [endpoint("198.19.1.1")], [{"name": "dns", "port": p, "protocol": "UDP"}],
                             f"dns-{p}") for p in endpoint_ports]  # fmt: skip
    return service_ports([svc], slices)


@needs_conntrack
@pytest.mark.usefixtures("flows")
async def test_the_kernel_forgets_flows_to_a_removed_endpoint_and_keeps_the_others() -> None:
    make_flow("198.19.1.1", 40001, 5001)
    make_flow("198.19.1.1", 40002, 5002)
    cleaner = StaleFlowCleaner()
    # the first sync: its previous targets are what the kernel holds, and 5001 is no endpoint any more
    ports = cluster_dns(5002)
    await cleaner.after_sync(ports, service_targets(ports, NODE))
    assert live_endpoints() == {("198.19.1.1", 5002)}

    make_flow("198.19.1.1", 40003, 5003)
    ports = cluster_dns(5002, 5003)
    await cleaner.after_sync(ports, service_targets(ports, NODE))
    assert live_endpoints() == {("198.19.1.1", 5002), ("198.19.1.1", 5003)}  # an added endpoint removes nothing
    ports = cluster_dns(5003)
    deleted = await cleaner.after_sync(ports, service_targets(ports, NODE))
    assert deleted == [FlowFilter(53, CLUSTER_IP, "198.19.1.1", 5002)]
    assert live_endpoints() == {("198.19.1.1", 5003)}


async def test_without_the_conntrack_tool_the_proxy_says_so_once_and_carries_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    cleaner = StaleFlowCleaner()
    before, after = cluster_dns(5001), cluster_dns(5002)
    with caplog.at_level(logging.WARNING, logger="shim.proxy"):
        assert await cleaner.after_sync(before, service_targets(before, NODE)) == []
        assert await cleaner.after_sync(after, service_targets(after, NODE)) == []
    [warning] = [r.getMessage() for r in caplog.records if "conntrack" in r.getMessage()]
    assert "apt-get install conntrack" in warning and "until they time out" in warning
