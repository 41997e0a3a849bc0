"""The cluster DNS component: the zone fed by the shared Services and EndpointSlices informers, the server,
and the loop that keeps the `kube-dns` Service and its endpoints in place (CoreDNS's role plus the part of
kubeadm's addon that makes the Service)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from shim.client import ApiClient, SharedInformerFactory, object_key
from shim.client.api import Obj
from shim.client.supervise import keep_running, spawn
from shim.dns.forward import Forwarder, Upstream
from shim.dns.records import Zone, service_records, slice_service
from shim.dns.resolver import Resolver
from shim.dns.server import DnsServer
from shim.dns.service import NAME, NAMESPACE, Publication, ensure_kube_dns
from shim.machinery.resources import ENDPOINT_SLICES, SERVICES

log = logging.getLogger("shim.dns")

SLICES_BY_SERVICE = "dns/service"
KEEP_INTERVAL = 10.0  # seconds between checks that the kube-dns objects are in place (as the API server's)
SYNC_WAIT = 5.0  # seconds start() waits for the first lists (CoreDNS's kubernetes plugin waits as long)


@dataclass
class DnsConfig:
    """Where the server listens, what it answers for, where the rest goes."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: a free port (published in the kube-dns endpoints)
    domain: str = "cluster.local"
    upstreams: list[Upstream] = field(default_factory=list)
    cluster_ip: str | None = None  # the kube-dns Service's; None: no Service is kept (tests, benchmarks)
    forward_timeout: float = 2.0


class ClusterDns:
    """Serves the cluster domain from the informers' caches; `client.health` reports its loops."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory, config: DnsConfig) -> None:
        self.client = client
        self.config = config
        self.zone = Zone(config.domain)
        self.services = informers.informer_for(SERVICES)
        self.slices = informers.informer_for(ENDPOINT_SLICES)
        self.slices.add_indexer(SLICES_BY_SERVICE, lambda s: [key] if (key := slice_service(s)) else [])
        self._registrations = [
            self.services.add_event_handler(self._on_service),
            self.slices.add_event_handler(self._on_slice),
        ]
        resolver = Resolver(self.zone, Forwarder(config.upstreams, timeout=config.forward_timeout), synced=self.synced)
        self.server = DnsServer(resolver, config.listen_host, config.listen_port)
        self._kept = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._informers = informers

    async def start(self) -> None:
        """Listen (OSError when the address cannot be served), then keep the kube-dns objects in place. With
        no port asked for, the one the kube-dns Service already points at is taken again when it is free, so
        a restart changes neither the endpoints nor the proxy's rules."""
        previous = await self._published_port() if self.config.listen_port == 0 else None
        listening = False
        if previous is not None:
            self.server.port = previous
            try:
                await self.server.start()
                listening = True
            except OSError:  # taken meanwhile: any free port
                self.server.port = 0
        if not listening:
            await self.server.start()
        self._informers.start()
        with contextlib.suppress(TimeoutError):  # as CoreDNS: wait a little for the first lists, then serve anyway
            async with asyncio.timeout(SYNC_WAIT):
                await asyncio.gather(*(registration.synced.wait() for registration in self._registrations))
        log.info("cluster DNS for %s on %s:%d, forwarding to %s", self.config.domain, self.config.listen_host,
                 self.server.port, ", ".join(f"{h}:{p}" for h, p in self.config.upstreams) or "nothing")  # fmt: skip
        if self.config.cluster_ip is not None:
            publication = Publication(self.config.cluster_ip, self.config.listen_host, self.server.port)
            self._keeper = spawn(
                keep_running("kube-dns service", lambda: self._keep(publication), self.client.health),
                "kube-dns service",
            )

    def synced(self) -> bool:
        """Whether the zone has seen every Service and EndpointSlice of the first lists."""
        return all(registration.synced.is_set() for registration in self._registrations)

    async def stop(self) -> None:
        """Stop serving and keeping (the kube-dns objects stay, as a restarted server will serve them)."""
        for registration in self._registrations:
            registration.informer.remove_event_handler(registration)
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        await self.server.stop()
        await self.client.close()

    async def _published_port(self) -> int | None:
        """The `dns` targetPort of the existing kube-dns Service, if any (and readable now)."""
        if self.config.cluster_ip is None:
            return None
        try:
            service = await self.client.get(SERVICES, NAME, NAMESPACE)
        except Exception:  # absent or unreachable: a fresh port it is
            return None
        ports = [p.get("targetPort") for p in service.get("spec", {}).get("ports") or () if p.get("name") == "dns"]
        return ports[0] if ports and isinstance(ports[0], int) and 0 < ports[0] < 65_536 else None

    async def _keep(self, publication: Publication) -> None:
        first = True
        while True:
            self._kept.clear()  # before the round: a deletion seen during it wakes the next one at once
            await ensure_kube_dns(self.client, publication, first)
            first = False
            try:
                async with asyncio.timeout(KEEP_INTERVAL):
                    await self._kept.wait()  # woken early when one of them is deleted
            except TimeoutError:
                pass

    async def _on_service(self, event: str, service: Obj, old: Obj | None) -> None:
        key = object_key(service)
        self._refresh(key)
        if event == "DELETED" and key == f"{NAMESPACE}/{NAME}":
            self._kept.set()

    async def _on_slice(self, event: str, endpoint_slice: Obj, old: Obj | None) -> None:
        keys = {slice_service(endpoint_slice), slice_service(old) if old is not None else None}
        for key in keys:
            if key is not None:
                self._refresh(key)
        if event == "DELETED" and object_key(endpoint_slice) == f"{NAMESPACE}/{NAME}":
            self._kept.set()

    def _refresh(self, key: str) -> None:
        """Recompute one Service's records from the caches."""
        service = self.services.get(key)
        if service is None:
            self.zone.replace(key, [])
            return
        self.zone.replace(key, service_records(service, self.slices.by_index(SLICES_BY_SERVICE, key), self.zone.domain))
