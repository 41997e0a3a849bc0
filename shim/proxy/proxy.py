"""The service proxy of one node: Services, EndpointSlices and Nodes from the shared informers in, one nftables
table out (kube-proxy's nftables mode, run like any controller: desired state in, one atomic write out).

A change marks the rules dirty; a sync follows at most MIN_SYNC_INTERVAL after the previous one (a burst of
endpoint changes costs one `nft -f`), and every FULL_SYNC_INTERVAL anyway (someone may have flushed the
table). The first sync replaces whatever table a previous run left, so the rules of Services deleted while the
proxy was down vanish; it and every full sync also remove the tables of proxies that are gone. A failed sync
is logged with the refused ruleset line and retried with back-off; the component's `client.health` reports it
to /readyz. After each sync, UDP flows DNATed to endpoints the sync removed are deleted (`conntrack`).
Stopping leaves the table in place: established connections and the rules keep working until the next proxy
takes over.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass

from shim.client import ApiClient, SharedInformerFactory
from shim.client.api import Obj
from shim.client.informer import Registration
from shim.client.supervise import keep_running, spawn
from shim.machinery.resources import ENDPOINT_SLICES, NODES, SERVICES
from shim.proxy import kernel
from shim.proxy.conntrack import StaleFlowCleaner
from shim.proxy.rules import TABLE_PREFIX, Ranges, compile_ruleset, service_ports, service_targets

log = logging.getLogger("shim.proxy")

MIN_SYNC_INTERVAL = 0.1  # seconds between two syncs: coalesces bursts, keeps changes well within a second
FULL_SYNC_INTERVAL = 30.0  # resync this often even when nothing changed
NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


@dataclass(frozen=True)
class ProxyConfig:
    """Which node the proxy serves, the cluster it belongs to, and the address ranges."""

    node_name: str
    cluster_id: str
    ranges: Ranges

    @property
    def table(self) -> str:
        """`kube-shim-<cluster id>-<node hash>`: the table this proxy owns. Two nodes of one cluster may share a
        host (`kube-shim up` and a `kube-shim node`); each keeps its own table rather than rewriting the other's
        (their rules differ in the node's addresses and its Local endpoints)."""
        node = hashlib.sha256(self.node_name.encode()).hexdigest()[:8]
        return f"{TABLE_PREFIX}{self.cluster_id}-{node}"


class ServiceProxy:
    """Keeps the node's nftables table in step with the API. `client` is the proxy's own (its `health` is what
    /readyz reads); `informers` the process's shared factory."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory, config: ProxyConfig) -> None:
        self.client = client
        self.config = config
        self.services = informers.informer_for(SERVICES)
        self.slices = informers.informer_for(ENDPOINT_SLICES)
        self.nodes = informers.informer_for(NODES)
        self._informers = informers
        self._dirty = asyncio.Event()
        self._registrations: list[Registration] = [
            self.services.add_event_handler(self._changed),
            self.slices.add_event_handler(self._changed),
            self.nodes.add_event_handler(self._node_changed),
        ]
        self._task: asyncio.Task[None] | None = None
        self._owner = kernel.this_process()
        self._stale_flows = StaleFlowCleaner()

    def start(self) -> None:
        self._informers.start()
        name = f"service proxy of node {self.config.node_name}"
        self._task = spawn(keep_running(name, self._run, self.client.health), name)

    async def stop(self) -> None:
        """Stop syncing; the table stays (see the module docstring)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for registration in self._registrations:
            registration.informer.remove_event_handler(registration)
        await self.client.close()

    async def sync(self) -> None:
        """Compute the whole ruleset from the caches and load it; KernelError when the kernel refuses."""
        started = time.monotonic()
        node = self.nodes.get(self.config.node_name) or {}
        pod_cidrs = _pod_cidrs(node)
        ports = service_ports(self.services.list(), self.slices.list())
        ruleset = compile_ruleset(self.config.table, ports, self.config.node_name, _node_addresses(node),
                                  self.config.ranges, self._owner)  # fmt: skip
        await kernel.apply_ruleset(ruleset)
        # only once the rules no longer lead there: a packet in between would make the flow again
        for flow in await self._stale_flows.after_sync(ports, service_targets(ports, self.config.node_name)):
            log.info("deleted UDP flows: %s", " ".join(flow.arguments()[2:]))
        if pod_cidrs:
            for setting in await asyncio.to_thread(kernel.prepare_pod_bridges, pod_cidrs):
                log.info("pod bridge: %s set", setting)
        log.debug("synced table %s in %.3fs", self.config.table, time.monotonic() - started)

    async def _run(self) -> None:
        await asyncio.gather(*(registration.synced.wait() for registration in self._registrations))
        ranges = self.config.ranges
        await asyncio.to_thread(kernel.ensure_local_routes, (ranges.service_cidr, ranges.load_balancer_range))
        loop = asyncio.get_running_loop()
        full = True
        while True:
            self._dirty.clear()
            last = loop.time()
            await self.sync()
            if full:
                for table in await kernel.remove_orphaned_tables(self.config.table):
                    log.info("removed table %s: the proxy that kept it is gone", table)
            try:
                await asyncio.wait_for(self._dirty.wait(), FULL_SYNC_INTERVAL)
                full = False
            except TimeoutError:
                full = True
                continue
            # rate limit, not synchronisation: changes arriving meanwhile join this sync
            await asyncio.sleep(max(0.0, last + MIN_SYNC_INTERVAL - loop.time()))

    async def _changed(self, event: str, obj: Obj, old: Obj | None) -> None:
        self._dirty.set()

    async def _node_changed(self, event: str, node: Obj, old: Obj | None) -> None:
        # only this node's addresses and pod ranges matter, not every node's heartbeat
        if node["metadata"]["name"] != self.config.node_name:
            return
        if old is None or _node_addresses(node) != _node_addresses(old) or _pod_cidrs(node) != _pod_cidrs(old):
            self._dirty.set()


def _node_addresses(node: Obj) -> list[str]:
    addresses = (node.get("status") or {}).get("addresses") or ()
    return [a["address"] for a in addresses if isinstance(a, dict) and a.get("type") in NODE_ADDRESS_TYPES]


def _pod_cidrs(node: Obj) -> list[ipaddress.IPv4Network]:
    cidrs = []
    for text in (node.get("spec") or {}).get("podCIDRs") or ():
        try:
            cidr = ipaddress.ip_network(text)
        except (TypeError, ValueError):
            continue
        if isinstance(cidr, ipaddress.IPv4Network):
            cidrs.append(cidr)
    return cidrs
