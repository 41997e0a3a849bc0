"""The service proxy's ruleset compiler: Services + EndpointSlices + the node in, nftables text out, checked by the
kernel (`nft -c -f`) and, for the applier, loaded into a table of the test's own and replaced."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shim.proxy.kernel import KernelError, apply_ruleset, remove_orphaned_tables, this_process
from shim.proxy.rules import Ranges, compile_ruleset, service_ports
from tests.prerequisites import needs_nftables
from tests.proxy_objects import NODE, endpoint, endpoint_slice, service

pytestmark = needs_nftables

Obj = dict[str, Any]
RANGES = Ranges(
    service_cidr=ipaddress.IPv4Network("10.96.0.0/12"),
    load_balancer_range=ipaddress.IPv4Network("10.112.0.0/24"),
    pod_cidr=ipaddress.IPv4Network("10.244.0.0/16"),
)
TABLE = "kube-shim-rulestest"
REFUSE = ["meta l4proto tcp reject with tcp reset", "reject"]


def ruleset(
    table: str, services: list[Obj], slices: list[Obj], addresses: tuple[str, ...] = (), owner: str = ""
) -> str:
    """The rules for `services` and `slices` on node NODE with `addresses`."""
    return compile_ruleset(table, service_ports(services, slices), NODE, addresses, RANGES, owner)


def compile_checked(services: list[Obj], slices: list[Obj], addresses: tuple[str, ...] = ("127.0.0.1",)) -> str:
    """The ruleset, after the kernel accepted it (`nft -c` parses and validates without changing anything)."""
    text = ruleset(TABLE, services, slices, addresses)
    checked = subprocess.run(["nft", "-c", "-f", "-"], input=text, text=True, capture_output=True, check=False)
    assert checked.returncode == 0, f"nft refused the ruleset: {checked.stderr}\n{text}"
    return text


def chain(text: str, prefix: str) -> list[str]:
    """The rules of the one chain whose name starts with `prefix`."""
    found = re.findall(r"^  chain (" + re.escape(prefix) + r"\S*) \{\n(.*?)^  \}", text, re.S | re.M)
    assert len(found) == 1, f"{len(found)} chains named {prefix}*:\n{text}"
    return [line.strip() for line in found[0][1].splitlines()]


def elements(text: str, map_name: str) -> list[str]:
    match = re.search(r"^  map " + map_name + r" \{\n.*?(?:elements = \{ (.*?) \}\n)?  \}", text, re.S | re.M)
    assert match is not None
    return match.group(1).split(", ") if match.group(1) else []


def dnat_targets(text: str) -> set[str]:
    return set(re.findall(r"dnat to (\S+)", text))


# -- ClusterIP ---------------------------------------------------------------------------------------------------


def test_a_cluster_ip_spreads_over_its_ready_endpoints_on_the_slice_port() -> None:
    slices = [endpoint_slice("web", [endpoint("10.244.1.2"), endpoint("10.244.1.3"), endpoint("10.244.2.9")])]
    text = compile_checked([service("web")], slices)
    assert elements(text, "service-ips") == [f"10.96.1.1 . tcp . 80 : goto {chain_name(text, 'svc-')}"]
    assert dnat_targets(text) == {"10.244.1.2:8080", "10.244.1.3:8080", "10.244.2.9:8080"}
    assert any(rule.startswith("numgen random mod 3 vmap") for rule in chain(text, "all-"))
    # clients that are not pods (the host) are masqueraded, so replies come back through the host
    assert "ip saddr != 10.244.0.0/16 jump mark-for-masquerade" in chain(text, "svc-")


def test_each_protocol_of_a_service_gets_its_own_entry() -> None:
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
             {"name": "s", "port": 9, "protocol": "SCTP"}]  # fmt: skip
    slice_ports = [{"name": "dns", "port": 5353, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 5353, "protocol": "TCP"},
                   {"name": "s", "port": 9999, "protocol": "SCTP"}]  # fmt: skip
    text = compile_checked(
        [service("dns", ports=ports)], [endpoint_slice("dns", [endpoint("10.244.1.2")], slice_ports)]
    )
    keys = {entry.split(" : ")[0] for entry in elements(text, "service-ips")}
    assert keys == {"10.96.1.1 . udp . 53", "10.96.1.1 . tcp . 53", "10.96.1.1 . sctp . 9"}
    assert {"meta l4proto udp dnat to 10.244.1.2:5353", "meta l4proto sctp dnat to 10.244.1.2:9999"} <= set(
        line.strip() for line in text.splitlines()
    )


def test_a_named_target_port_may_differ_per_slice() -> None:
    slices = [
        endpoint_slice("web", [endpoint("10.244.1.2")], name="web-a"),
        endpoint_slice("web", [endpoint("10.244.1.3")], [{"name": "http", "port": 9090, "protocol": "TCP"}], "web-b"),
    ]
    assert dnat_targets(compile_checked([service("web")], slices)) == {"10.244.1.2:8080", "10.244.1.3:9090"}


def test_not_ready_endpoints_get_no_traffic_unless_only_terminating_ones_still_serve() -> None:
    slices = [endpoint_slice("web", [endpoint("10.244.1.2"), endpoint("10.244.1.3", ready=False)])]
    assert dnat_targets(compile_checked([service("web")], slices)) == {"10.244.1.2:8080"}

    draining = [endpoint("10.244.1.4", ready=False, serving=True, terminating=True),
                endpoint("10.244.1.5", ready=False, serving=False, terminating=True),
                endpoint("10.244.1.6", ready=False)]  # fmt: skip
    text = compile_checked([service("web")], [endpoint_slice("web", draining)])
    assert dnat_targets(text) == {"10.244.1.4:8080"}


def test_a_service_without_endpoints_is_refused_at_once_on_every_address() -> None:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    svc = service("web", ports=ports, type="NodePort", externalIPs=["192.0.2.50"])
    text = compile_checked([svc], [endpoint_slice("web", [endpoint("10.244.1.2", ready=False)])])
    assert elements(text, "service-ips") == [] and elements(text, "service-nodeports") == []
    assert elements(text, "no-endpoint-services") == [
        "10.96.1.1 . tcp . 80 : goto refuse",
        "192.0.2.50 . tcp . 80 : goto refuse",
    ]
    assert elements(text, "no-endpoint-nodeports") == ["tcp . 30080 : goto refuse"]
    assert chain(text, "refuse") == REFUSE
    # checked after the nat hooks, for traffic to the host, through it, and from it
    for hook in ("filter-input", "filter-forward", "filter-output"):
        assert "ct state new jump no-endpoints" in chain(text, hook)
    assert dnat_targets(text) == set() and "chain svc-" not in text


def test_headless_external_name_and_unallocated_services_get_no_rules() -> None:
    services = [
        service("headless", cluster_ip="None"),
        service("external", cluster_ip="", type="ExternalName", externalName="example.com"),
        service("pending", cluster_ip=""),
    ]
    slices = [endpoint_slice(s["metadata"]["name"], [endpoint("10.244.1.2")]) for s in services]
    text = compile_checked(services, slices)
    assert elements(text, "service-ips") == []
    assert "chain svc-" not in text and dnat_targets(text) == set()


def test_session_affinity_pins_a_client_for_the_timeout() -> None:
    affinity = {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}
    slices = [endpoint_slice("web", [endpoint("10.244.1.2"), endpoint("10.244.1.3")])]
    text = compile_checked([service("web", **affinity)], slices)
    assert len(re.findall(r"^  set aff-\S+ \{\n    type ipv4_addr\n    flags dynamic,timeout\n    timeout 600s\n",
                          text, re.M)) == 2  # fmt: skip
    lookups = [rule for rule in chain(text, "all-") if rule.startswith("ip saddr @aff-")]
    assert len(lookups) == 2  # a known client goes back to its endpoint before the random pick
    assert any(
        rule.startswith("update @aff-") for rule in chain(text, "ep-" + chain_name(text, "svc-")[4:] + "__10.244.1.2")
    )


def test_internal_traffic_policy_local_uses_only_this_nodes_endpoints() -> None:
    slices = [endpoint_slice("web", [endpoint("10.244.1.2"), endpoint("10.244.2.2", node="node-b")])]
    text = compile_checked([service("web", internalTrafficPolicy="Local")], slices)
    assert chain(text, "svc-")[-1].startswith("goto local-")
    assert "10.244.2.2" not in " ".join(chain(text, "local-"))


def test_hairpin_traffic_is_masqueraded_so_the_reply_returns_through_the_host() -> None:
    text = compile_checked([service("web")], [endpoint_slice("web", [endpoint("10.244.1.2")])])
    assert chain(text, "ep-")[0] == "ip saddr 10.244.1.2 jump mark-for-masquerade"


# -- NodePort, LoadBalancer, externalIPs --------------------------------------------------------------------------


def test_node_ports_answer_on_the_node_addresses_and_on_localhost_for_the_host() -> None:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    slices = [endpoint_slice("web", [endpoint("10.244.1.2")])]
    text = compile_checked([service("web", ports=ports, type="NodePort")], slices, ("127.0.0.1", "192.0.2.7"))
    assert elements(text, "service-nodeports") == [f"tcp . 30080 : goto {chain_name(text, 'ext-')}"]
    rules = chain(text, "services")
    assert "ip daddr { 192.0.2.7 } meta l4proto . th dport vmap @service-nodeports" in rules
    assert "ip daddr 127.0.0.1 fib saddr type local meta l4proto . th dport vmap @service-nodeports" in rules
    assert chain(text, "ext-") == ["jump mark-for-masquerade", f"goto {chain_name(text, 'all-')}"]
    # what makes 127.0.0.1 safe to route to pods: nothing from outside lo may carry a loopback address
    assert chain(text, "localnet-guard")[1:] == ['iifname != "lo" ip saddr 127.0.0.0/8 drop',
                                                 'iifname != "lo" ip daddr 127.0.0.0/8 drop']  # fmt: skip


def test_load_balancer_and_external_ips_lead_to_the_external_chain() -> None:
    status = {
        "loadBalancer": {"ingress": [{"ip": "10.112.0.1", "ipMode": "VIP"}, {"ip": "10.112.0.2", "ipMode": "Proxy"}]}
    }
    svc = service("web", type="LoadBalancer", externalIPs=["192.0.2.50"], status=status)
    text = compile_checked([svc], [endpoint_slice("web", [endpoint("10.244.1.2")])])
    entries = {entry.split(" : ")[0]: entry.split(" : ")[1] for entry in elements(text, "service-ips")}
    ext = f"goto {chain_name(text, 'ext-')}"
    assert entries == {"10.96.1.1 . tcp . 80": f"goto {chain_name(text, 'svc-')}", "10.112.0.1 . tcp . 80": ext,
                       "192.0.2.50 . tcp . 80": ext}  # fmt: skip


def test_external_traffic_policy_local_keeps_outside_clients_on_this_nodes_endpoints() -> None:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    slices = [endpoint_slice("web", [endpoint("10.244.2.2", node="node-b")])]
    text = compile_checked([service("web", ports=ports, type="NodePort", externalTrafficPolicy="Local")], slices)
    all_chain, local_chain = chain_name(text, "all-"), chain_name(text, "local-")
    assert chain(text, "ext-") == [
        f"ip saddr 10.244.0.0/16 goto {all_chain}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {all_chain}",
        f"goto {local_chain}",
    ]
    assert chain(text, "local-") == ["drop"]  # no endpoint on this node, as kube


# -- the whole table -------------------------------------------------------------------------------------------


def test_pod_to_pod_traffic_is_never_masqueraded_and_unassigned_addresses_are_refused() -> None:
    text = compile_checked([], [])
    postrouting = chain(text, "nat-postrouting")
    assert postrouting[1:] == ["jump masquerading", "ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 snat ip to ip saddr"]
    assert "srcnat - 10" in postrouting[0]  # before netavark's masquerade, which a null binding then skips
    assert chain(text, "filter-input")[-1] == "ct state new ip daddr { 10.96.0.0/12, 10.112.0.0/24 } goto unassigned"
    assert chain(text, "unassigned") == ["meta l4proto tcp reject with tcp reset",
                                                "reject with icmp type host-unreachable"]  # fmt: skip
    assert text.startswith(f"add table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n")


def test_hostile_names_and_values_stay_inside_their_place_in_the_ruleset() -> None:
    svc = service("web", ports=[{"name": "h;drop", "port": 80, "protocol": "TCP", "nodePort": "30080; flush"},
                                {"port": 70000}, {"port": 81, "protocol": "ICMP"}])  # fmt: skip
    svc["spec"]["externalIPs"] = ["1.2.3.4 } ; flush ruleset", "::1"]
    bad = endpoint_slice("web", [{"addresses": ["10.244.1.2; drop"], "conditions": {}}, endpoint("10.244.1.3")],
                         [{"name": "h;drop", "port": 8080, "protocol": "TCP"}])  # fmt: skip
    text = compile_checked([svc], [bad])
    assert dnat_targets(text) == {"10.244.1.3:8080"}
    assert elements(text, "service-nodeports") == [] and "flush" not in text


def chain_name(text: str, prefix: str) -> str:
    names = re.findall(r"^  chain (" + re.escape(prefix) + r"\S*) \{", text, re.M)
    assert len(names) == 1, names
    return names[0]


# -- the applier -----------------------------------------------------------------------------------------------


@pytest.fixture
def table() -> Iterator[str]:
    """A table name of this test's own, deleted afterwards."""
    name = f"kube-shim-test{uuid.uuid4().hex[:8]}"
    yield name
    for made in re.findall(r"^table ip (" + name + r"\S*)", subprocess.run(["nft", "list", "tables"],
                           capture_output=True, text=True, check=True).stdout, re.M):  # fmt: skip
        subprocess.run(["nft", "delete", "table", "ip", made], capture_output=True, check=False)


async def test_each_sync_replaces_the_table_so_deleted_services_leave_nothing(table: str) -> None:
    slices = [endpoint_slice("web", [endpoint("10.244.1.2")]), endpoint_slice("old", [endpoint("10.244.1.9")])]
    services = [service("web"), service("old", cluster_ip="10.96.1.2")]
    await apply_ruleset(ruleset(table, services, slices))
    assert "10.244.1.9:8080" in listing(table)

    await apply_ruleset(ruleset(table, services[:1], slices))
    loaded = listing(table)
    assert "10.244.1.2:8080" in loaded and "10.244.1.9" not in loaded and "/old/" not in loaded


async def test_a_refused_ruleset_names_its_line_and_changes_nothing(table: str) -> None:
    good = ruleset(table, [service("web")], [endpoint_slice("web", [endpoint("10.244.1.2")])])
    await apply_ruleset(good)
    bad = good.replace("dnat to 10.244.1.2:8080", "dnat to 10.244.1.2:99999")
    with pytest.raises(KernelError, match=r"ruleset line \d+: meta l4proto tcp dnat to 10.244.1.2:99999"):
        await apply_ruleset(bad)
    assert "10.244.1.2:8080" in listing(table)  # the transaction is all or nothing


def listing(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True, check=True).stdout


def test_a_missing_nft_is_a_kernel_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(KernelError, match="cannot run nft"):
        asyncio.run(apply_ruleset("add table ip x\n"))


async def test_tables_whose_proxy_is_gone_are_removed_and_live_ones_kept(table: str) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    owners = {"gone": f"{finished.pid}-1", "alive": this_process(), "unowned": "", "own": ""}
    for suffix, owner in owners.items():
        await apply_ruleset(ruleset(f"{table}-{suffix}", [], [], owner=owner))

    removed = await remove_orphaned_tables(own_table=f"{table}-own")
    assert {f"{table}-gone", f"{table}-unowned"} <= set(removed)
    left = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert f"table ip {table}-alive\n" in left and f"table ip {table}-own\n" in left
    assert f"{table}-gone" not in left and f"{table}-unowned" not in left
