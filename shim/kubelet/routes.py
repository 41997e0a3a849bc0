"""Pod networking across hosts, the host-gw model: a route to every other node's pod range via that node's address.

Each node's pods live on a bridge of their host (`spec.podCIDR`, one /24). Nodes on the same host reach each
other's pods through the host's own connected routes; for a node on another host, this agent adds
`<its podCIDR> via <its InternalIP>` (the hosts must share a network, as flannel's host-gw requires) and removes
the route when the node goes away or moves. Pod addresses stay unchanged on the way (no NAT): the other host
forwards to its bridge. An overlay (VXLAN) could replace this module: it only turns Nodes into routes.

Routes are tagged with their own protocol number (`ip route ... proto 147`) and the agent remembers, in its data
dir, which ones it added, so a restarted agent removes the routes of nodes deleted meanwhile and never touches
a route it did not make (another cluster's, or the host's own).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from shim.client import ApiClient, SharedInformerFactory
from shim.client.api import Obj
from shim.client.informer import Registration
from shim.client.supervise import keep_running, spawn
from shim.iproute import IpError, ip, ip_json
from shim.machinery.resources import NODES
from shim.pki import write_atomically

log = logging.getLogger("shim.kubelet.routes")

ROUTE_PROTOCOL = 147  # marks the routes kube-shim adds (`ip route show proto 147`); unused by routing daemons
RESYNC_INTERVAL = 30.0  # seconds: routes someone removed by hand come back
MAX_ROUTES = 5000  # a cluster of kube's maximum size; more nodes than that are refused, not routed

Routes = dict[ipaddress.IPv4Network, ipaddress.IPv4Address]


class RouteError(Exception):
    """The kernel refused route changes; the message says which."""


def desired_routes(
    nodes: Iterable[Obj],
    own_name: str,
    local_addresses: set[ipaddress.IPv4Address],
    connected: Iterable[ipaddress.IPv4Network],
) -> Routes:
    """The pod range of every other node whose InternalIP is not this host's, via that address.

    A range that overlaps a network this host is connected to (its own bridges, a subnet of a local
    interface) is skipped: routing it elsewhere would cut the local one off. A node without a pod range or an
    IPv4 InternalIP gets no route, and of two nodes claiming the same range the first by name wins."""
    connected = list(connected)
    routes: Routes = {}
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        if node["metadata"]["name"] == own_name or len(routes) >= MAX_ROUTES:
            continue
        via = internal_ip(node)
        if via is None or via in local_addresses:
            continue
        for cidr in pod_cidrs(node):
            if cidr in routes or any(cidr.overlaps(net) for net in connected):
                continue
            routes[cidr] = via
    return routes


def internal_ip(node: Obj) -> ipaddress.IPv4Address | None:
    """The node's first IPv4 InternalIP."""
    for address in (node.get("status") or {}).get("addresses") or ():
        if isinstance(address, dict) and address.get("type") == "InternalIP":
            try:
                ip = ipaddress.ip_address(address.get("address", ""))
            except ValueError:
                continue
            if isinstance(ip, ipaddress.IPv4Address) and not ip.is_loopback and not ip.is_unspecified:
                return ip
    return None


def pod_cidrs(node: Obj) -> list[ipaddress.IPv4Network]:
    """The node's IPv4 pod ranges (spec.podCIDRs, else spec.podCIDR)."""
    spec = node.get("spec") or {}
    texts = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    cidrs = []
    for text in texts:
        try:
            cidr = ipaddress.ip_network(text)
        except (TypeError, ValueError):
            continue
        if isinstance(cidr, ipaddress.IPv4Network):
            cidrs.append(cidr)
    return cidrs


class PodRoutes:
    """Keeps this host's routes to other nodes' pods in step with the Nodes. `client` is the one whose health
    /readyz reads; `state_file` remembers the routes this agent added."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory, node_name: str, state_file: Path) -> None:
        self.client = client
        self.node_name = node_name
        self.state_file = state_file
        self.nodes = informers.informer_for(NODES)
        self._informers = informers
        self._dirty = asyncio.Event()
        self._registration: Registration = self.nodes.add_event_handler(self._node_changed)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._informers.start()
        name = f"pod routes of node {self.node_name}"
        self._task = spawn(keep_running(name, self._run, self.client.health), name)

    async def stop(self) -> None:
        """Stop following the Nodes; the routes stay, so traffic keeps flowing until the next agent takes over."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.nodes.remove_event_handler(self._registration)

    async def sync(self) -> None:
        """Add the missing routes and remove the ones of nodes gone; RouteError or IpError when the kernel refuses."""
        desired = desired_routes(self.nodes.list(), self.node_name, *await asyncio.to_thread(_host_networks))
        await asyncio.to_thread(apply_routes, desired, self.state_file)

    async def _run(self) -> None:
        await self._registration.synced.wait()
        while True:
            self._dirty.clear()
            await self.sync()
            try:
                await asyncio.wait_for(self._dirty.wait(), RESYNC_INTERVAL)
            except TimeoutError:
                continue

    async def _node_changed(self, event: str, node: Obj, old: Obj | None) -> None:
        # heartbeats change neither address nor range: only real changes cost a sync
        if (
            event == "DELETED"
            or old is None
            or (internal_ip(node), pod_cidrs(node)) != (internal_ip(old), pod_cidrs(old))
        ):
            self._dirty.set()


def apply_routes(desired: Routes, state_file: Path) -> None:
    """Make the kernel's routes tagged ROUTE_PROTOCOL that this agent owns (listed in `state_file`) equal
    `desired`, and record what it owns now. Blocking. Every change is tried; RouteError names the refused ones
    (a node whose address this host cannot reach does not keep the others from their routes)."""
    present = kernel_routes()
    owned = _load_owned(state_file)
    # recorded before any change: a crash in between leaves routes the next run still knows to remove
    _save_owned(state_file, owned | set(desired))
    refused = []
    for cidr, via in desired.items():
        if present.get(cidr) != via:
            try:
                ip("route", "replace", str(cidr), "via", str(via), "proto", str(ROUTE_PROTOCOL))
            except IpError as exc:
                refused.append(str(exc))
            else:
                log.info("pods of %s routed via %s", cidr, via)
    kept = set()
    for cidr in owned - set(desired):
        if cidr in present:
            try:
                ip("route", "del", str(cidr), "via", str(present[cidr]), "proto", str(ROUTE_PROTOCOL))
            except IpError as exc:
                refused.append(str(exc))
                kept.add(cidr)
            else:
                log.info("route to the pods of %s removed (no node has them now)", cidr)
    _save_owned(state_file, set(desired) | kept)
    if refused:
        raise RouteError("; ".join(refused))


def kernel_routes() -> Routes:
    """The IPv4 routes in the main table tagged ROUTE_PROTOCOL, by destination."""
    routes: Routes = {}
    for route in ip_json("-4", "route", "show", "proto", str(ROUTE_PROTOCOL)):
        try:
            routes[ipaddress.IPv4Network(route["dst"])] = ipaddress.IPv4Address(route["gateway"])
        except (KeyError, ValueError):
            continue  # not a route via a gateway: not one of ours
    return routes


def _host_networks() -> tuple[set[ipaddress.IPv4Address], list[ipaddress.IPv4Network]]:
    """This host's IPv4 addresses and the networks its interfaces are connected to."""
    addresses, networks = set(), []
    for link in ip_json("-4", "addr", "show"):
        for info in link.get("addr_info") or ():
            try:
                interface = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
            except (KeyError, ValueError):
                continue
            addresses.add(interface.ip)
            if interface.network.prefixlen < 32:
                networks.append(interface.network)
    return addresses, networks


def _load_owned(state_file: Path) -> set[ipaddress.IPv4Network]:
    try:
        return {ipaddress.IPv4Network(text) for text in json.loads(state_file.read_text())[:MAX_ROUTES]}
    except FileNotFoundError:
        return set()
    except (ValueError, TypeError, OSError) as exc:  # a damaged file: start over rather than stop routing
        log.warning("ignoring %s: %s", state_file, exc)
        return set()


def _save_owned(state_file: Path, owned: set[ipaddress.IPv4Network]) -> None:
    write_atomically(state_file, json.dumps(sorted(str(cidr) for cidr in owned)).encode(), 0o600)
