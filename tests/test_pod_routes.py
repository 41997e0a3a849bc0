"""Routes between nodes' pod ranges (host-gw): which routes a node wants, how they reach the kernel, and the
node agent's loop following the Nodes of a real API server.

The kernel parts run in network namespaces of their own, so the host's routes are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient, ApiException, SharedInformerFactory, load_kubeconfig
from shim.kubelet.routes import PodRoutes, desired_routes, kernel_routes
from shim.machinery.resources import NODES
from tests.cluster import Cluster
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
    shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0,
    reason=MISSING + "unshare(1), ip(8) and root (the route tests work in network namespaces of their own)",
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


# -- the node agent's loop, against the real API, its `ip` commands in a network namespace of the test's ------


@pytest.fixture
def private_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A named network namespace with a LAN 192.168.77.0/24, and `ip` on PATH running every command in it."""
    real_ip = shutil.which("ip")
    assert real_ip is not None  # needs_netns
    name = "kshim-routes-" + uuid.uuid4().hex[:8]
    subprocess.run([real_ip, "netns", "add", name], check=True)
    try:
        for args in (["link", "set", "lo", "up"], ["link", "add", "lan0", "type", "bridge"],
                     ["addr", "add", "192.168.77.1/24", "dev", "lan0"], ["link", "set", "lan0", "up"]):  # fmt: skip
            subprocess.run([real_ip, "-n", name, *args], check=True)
        wrapper = tmp_path / "bin" / "ip"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nexec {real_ip} -n {name} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
        yield name
    finally:
        subprocess.run([real_ip, "netns", "del", name], check=False)


async def routes_become(expected: dict[str, str], what: str) -> None:
    """Poll the namespace's routes (the agent works asynchronously) until they are `expected`, or fail."""
    deadline = asyncio.get_running_loop().time() + 20
    while (seen := {str(k): str(v) for k, v in (await asyncio.to_thread(kernel_routes)).items()}) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"routes never became {expected} ({what}); last {seen}")
        await asyncio.sleep(0.1)


@needs_netns
async def test_the_agent_routes_a_new_nodes_pods_and_forgets_a_deleted_node(
    cluster: Cluster, private_ip: str, tmp_path: Path
) -> None:
    far = "far-" + uuid.uuid4().hex[:8]
    body = node(far, "192.168.77.9", "10.244.250.0/24")
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        informers = SharedInformerFactory(client)
        routes = PodRoutes(client, informers, "me-" + uuid.uuid4().hex[:8], tmp_path / "routes.json")
        routes.start()
        try:
            await client.create(NODES, body)
            await routes_become({"10.244.250.0/24": "192.168.77.9"}, "after the node registered")
            moved = {"status": {"addresses": [{"type": "InternalIP", "address": "192.168.77.19"}]}}
            await client.patch(NODES, far, moved, subresource="status")
            await routes_become({"10.244.250.0/24": "192.168.77.19"}, "after the node moved")
            await client.delete(NODES, far)
            await routes_become({}, "after the node was deleted")
        finally:
            await routes.stop()
            await informers.stop()
            with contextlib.suppress(ApiException):
                await client.delete(NODES, far)
