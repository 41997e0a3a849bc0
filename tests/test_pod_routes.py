"""Routes between nodes' pod ranges (host-gw): which routes a node wants, and how they reach the kernel.

The kernel part runs in a private network namespace (`unshare --net`), so the host's routes are never touched.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shim.kubelet.routes import desired_routes
from tests.prerequisites import MISSING

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parent.parent
Net, Ip = ipaddress.IPv4Network, ipaddress.IPv4Address


def node(name: str, internal_ip: str | None, pod_cidr: str | None) -> Obj:
    addresses = [{"type": "Hostname", "address": name}]
    if internal_ip:
        addresses.insert(0, {"type": "InternalIP", "address": internal_ip})
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": addresses}}


LOCAL = {Ip("192.0.2.2"), Ip("127.0.0.1")}
CONNECTED = [Net("192.0.2.0/24"), Net("10.244.3.0/24")]  # the LAN and this node's own bridge


def test_a_node_on_another_host_is_reached_through_its_internal_ip() -> None:
    nodes = [node("me", "192.0.2.2", "10.244.3.0/24"), node("far", "192.0.2.9", "10.244.9.0/24")]
    assert desired_routes(nodes, "me", LOCAL, CONNECTED) == {Net("10.244.9.0/24"): Ip("192.0.2.9")}


def test_nodes_on_this_host_and_nodes_without_a_range_or_address_get_no_route() -> None:
    nodes = [
        node("me", "192.0.2.2", "10.244.3.0/24"),
        node("same-host", "192.0.2.2", "10.244.4.0/24"),  # its bridge is here: connected already
        node("loopback", "127.0.0.1", "10.244.5.0/24"),
        node("no-range", "192.0.2.9", None),
        node("no-address", None, "10.244.6.0/24"),
        node("v6", "2001:db8::9", "10.244.7.0/24"),
    ]
    assert desired_routes(nodes, "me", LOCAL, CONNECTED) == {}


def test_a_range_that_would_cut_off_a_local_network_is_not_routed() -> None:
    nodes = [node("clash", "192.0.2.9", "10.244.3.0/24"), node("lan", "192.0.2.10", "192.0.2.0/25")]
    assert desired_routes(nodes, "me", LOCAL, CONNECTED) == {}


def test_of_two_nodes_claiming_one_range_the_first_by_name_wins() -> None:
    nodes = [node("b", "192.0.2.11", "10.244.9.0/24"), node("a", "192.0.2.10", "10.244.9.0/24")]
    assert desired_routes(nodes, "me", LOCAL, CONNECTED) == {Net("10.244.9.0/24"): Ip("192.0.2.10")}


# -- the kernel, in a network namespace of its own ------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import ipaddress, json, subprocess, sys
    from pathlib import Path
    from shim.kubelet.routes import RouteError, apply_routes, kernel_routes

    def ip(*args):
        subprocess.run(["ip", *args], check=True)

    def routes():
        return {str(k): str(v) for k, v in kernel_routes().items()}

    def main_table():
        return sorted(r["dst"] for r in json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True,
                                                                  text=True, check=True).stdout))

    state = Path(sys.argv[1])
    Net, Ip = ipaddress.IPv4Network, ipaddress.IPv4Address
    ip("link", "set", "lo", "up")
    ip("link", "add", "lan0", "type", "bridge")
    ip("addr", "add", "192.168.77.1/24", "dev", "lan0")
    ip("link", "set", "lan0", "up")
    ip("route", "add", "10.244.40.0/24", "via", "192.168.77.40")  # the host's own (no protocol tag)
    ip("route", "add", "10.244.41.0/24", "via", "192.168.77.41", "proto", "147")  # another cluster's
    seen = {}
    apply_routes({Net("10.244.7.0/24"): Ip("192.168.77.7"), Net("10.244.8.0/24"): Ip("192.168.77.8")}, state)
    seen["added"] = routes()
    apply_routes({Net("10.244.8.0/24"): Ip("192.168.77.18")}, state)  # node 7 deleted, node 8 moved
    seen["changed"] = routes()
    try:
        apply_routes({Net("10.244.9.0/24"): Ip("203.0.113.9"), Net("10.244.8.0/24"): Ip("192.168.77.18")}, state)
    except RouteError as exc:
        seen["refused"] = str(exc)
    seen["after_refusal"] = routes()
    apply_routes({}, state)
    seen["emptied"] = routes()
    seen["main"] = main_table()
    print(json.dumps(seen))
    """
)


needs_netns = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason=MISSING + "unshare(1) and root (the route test works in a private network namespace)",
)


@needs_netns
def test_routes_are_added_moved_and_removed_leaving_other_routes_alone(tmp_path: Path) -> None:
    done = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", SCRIPT, str(tmp_path / "routes.json")],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    others = {"10.244.41.0/24": "192.168.77.41"}  # tagged like ours but never added by this agent: kept
    assert seen["added"] == {"10.244.7.0/24": "192.168.77.7", "10.244.8.0/24": "192.168.77.8", **others}
    assert seen["changed"] == {"10.244.8.0/24": "192.168.77.18", **others}
    assert "10.244.9.0/24 via 203.0.113.9" in seen["refused"]  # not reachable on any connected network
    assert seen["after_refusal"] == seen["changed"]
    assert seen["emptied"] == others
    assert seen["main"] == ["10.244.40.0/24", "10.244.41.0/24", "192.168.77.0/24"]
    assert json.loads((tmp_path / "routes.json").read_text()) == []
