"""Run the API server: open the store, bootstrap the objects every cluster has, serve HTTPS."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from shim.apiserver.apiserver_endpoints import reconcile_apiserver_endpoints
from shim.apiserver.app import OBJECTS, build_app
from shim.apiserver.errors import ApiError
from shim.apiserver.kinds.priorityclasses import SYSTEM_PRIORITY_CLASSES
from shim.apiserver.kinds.service_allocation import SERVICE_CIDR
from shim.apiserver.objects import Obj, ObjectStore, decode_as
from shim.apiserver.proxy import install_kubelet_client, kubelet_client_context
from shim.apiserver.registry import ResourceType
from shim.apiserver.resources import build_registry
from shim.heap import release_free_memory_periodically
from shim.machinery.networks import kubernetes_service_ip
from shim.machinery.resources import NAMESPACES, PRIORITY_CLASSES, SERVICES
from shim.store import Store
from shim.store.compactor import Compactor
from shim.store.factory import open_store

log = logging.getLogger("shim.apiserver")

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# the `kubernetes` service's ClusterIP: the first address of the service CIDR, as in kube
KUBERNETES_SERVICE_IP = kubernetes_service_ip(SERVICE_CIDR)
BOOTSTRAP_INTERVAL = 10.0  # kube-apiserver re-creates the system namespaces and `kubernetes` service this often


@dataclass
class ApiServerConfig:
    """What `kube-shim up` (or a test) decides about the API server."""

    host: str = "127.0.0.1"
    port: int = 6443
    store_url: str = "memory://"
    ssl_context: ssl.SSLContext | None = None
    middlewares: list = field(default_factory=list)
    compaction_interval: float = 300.0
    compaction_keep: int = 10_000
    kubelet_client_ssl: ssl.SSLContext | None = None  # how the API server proves itself to node agents
    # where pods reach the API (kube-apiserver's --advertise-address): served there too and named by the
    # `kubernetes` service's endpoints; None: pods have no way in, and those endpoints are removed
    advertise_address: str | None = None
    service_cidr: ipaddress.IPv4Network = SERVICE_CIDR  # where ClusterIPs come from (--service-cluster-ip-range)


class ApiServer:
    """The running API server; `start()` returns once it accepts requests, `stop()` closes everything."""

    def __init__(self, config: ApiServerConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.runner: web.AppRunner | None = None
        self.compactor: Compactor | None = None
        self.bound_port = config.port
        self._ready = False
        self._bootstrapper: asyncio.Task[None] | None = None
        self._heap_trimmer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = self.config
        self.store = await open_store(config.store_url)
        registry = build_registry(config.service_cidr)
        app = build_app(self.store, registry, config.middlewares, ready=lambda: self._ready)
        install_kubelet_client(app, config.kubelet_client_ssl or kubelet_client_context())
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self.runner.setup()
        await self._serve(config.host, config.port)
        if config.port == 0 and self.runner.addresses:
            self.bound_port = self.runner.addresses[0][1]
        advertised = config.advertise_address
        if advertised is not None and not _covers(config.host, advertised):
            await self._serve(advertised, self.bound_port)
        # once serving, as kube-apiserver's bootstrap post-start hook: /readyz fails until it is done
        kubernetes_ip = kubernetes_service_ip(config.service_cidr)
        await bootstrap(app[OBJECTS], self.bound_port, advertised, kubernetes_ip)
        self.compactor = Compactor(self.store, config.compaction_interval, config.compaction_keep)
        self.compactor.start()
        self._bootstrapper = asyncio.create_task(
            keep_bootstrapped(app[OBJECTS], self.bound_port, advertised, kubernetes_ip)
        )
        self._heap_trimmer = asyncio.create_task(release_free_memory_periodically())
        self._ready = True

    async def _serve(self, host: str, port: int) -> None:
        assert self.runner is not None
        site = web.TCPSite(
            self.runner, host, port, ssl_context=self.config.ssl_context, backlog=1024, reuse_address=True
        )
        await site.start()

    async def stop(self) -> None:
        self._ready = False
        for task in (self._bootstrapper, self._heap_trimmer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.compactor is not None:
            await self.compactor.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.store is not None:
            await self.store.close()


async def bootstrap(
    objects: ObjectStore, port: int, advertise_address: str | None = None, kubernetes_ip: str = KUBERNETES_SERVICE_IP
) -> None:
    """The namespaces and the `kubernetes` service (ClusterIP `kubernetes_ip`) every cluster starts with (kept
    across restarts), with the service's endpoints naming `advertise_address`:`port` (none without an address)."""
    registry = objects.registry
    namespaces, services = registry.get(NAMESPACES), registry.get(SERVICES)
    for name in DEFAULT_NAMESPACES:
        await _ensure(objects, namespaces, None, {"metadata": {"name": name}})
    service = {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": kubernetes_ip,
            "clusterIPs": [kubernetes_ip],
            "type": "ClusterIP",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    }
    await _ensure(objects, services, "default", service)
    await _reconcile_service_ports(objects, services, service)
    await reconcile_apiserver_endpoints(objects, advertise_address, port)
    priority_classes = registry.get(PRIORITY_CLASSES)
    for priority_class in SYSTEM_PRIORITY_CLASSES:
        await _ensure(objects, priority_classes, None, copy.deepcopy(priority_class))


async def keep_bootstrapped(
    objects: ObjectStore, port: int, advertise_address: str | None, kubernetes_ip: str = KUBERNETES_SERVICE_IP
) -> None:
    """Forever: put back what `bootstrap` creates if someone deleted or changed it (the `kubernetes` service and
    its endpoints)."""
    while True:
        await asyncio.sleep(BOOTSTRAP_INTERVAL)
        try:
            await bootstrap(objects, port, advertise_address, kubernetes_ip)
        except Exception:  # a store hiccup must not end the loop: the next round tries again
            log.exception("re-creating the system objects failed; retrying in %.0f s", BOOTSTRAP_INTERVAL)


async def _ensure(objects: ObjectStore, rt: ResourceType, namespace: str | None, obj: Obj) -> None:
    """Create `obj` unless it exists: a plain read first, so the rounds of `keep_bootstrapped` cost no
    admission or validation while everything is in place."""
    if await objects.store.get(rt.key(namespace, obj["metadata"]["name"])) is not None:
        return
    try:
        await objects.create(rt, namespace, obj)
    except ApiError as exc:
        if exc.code != 409:  # created meanwhile
            raise


async def _reconcile_service_ports(objects: ObjectStore, rt: ResourceType, service: Obj) -> None:
    """Put the `kubernetes` service's type and ports back to `service`'s (the API's port changes when the server
    restarts on another), as kube-apiserver's controller does; a plain read while they are right."""
    name, wanted = service["metadata"]["name"], service["spec"]
    kv = await objects.store.get(rt.key("default", name))
    if kv is None or _port_fields(decode_as(rt, kv)["spec"]) == _port_fields(wanted):
        return

    def repair(current: Obj) -> Obj:
        current["spec"].update(type=wanted["type"], ports=copy.deepcopy(wanted["ports"]))
        return current

    try:
        await objects.update(rt, "default", name, repair)
    except ApiError as exc:  # e.g. someone's change that the old type allowed: the endpoints still get done
        log.warning("cannot put back the kubernetes service's ports: %s", exc)


def _port_fields(spec: Obj) -> tuple[object, list[tuple[object, ...]]]:
    ports = spec.get("ports") or []
    keys = ("name", "port", "protocol", "targetPort", "nodePort")
    return spec.get("type"), [tuple(p.get(k) for k in keys) for p in ports if isinstance(p, dict)]


def _covers(listen_host: str, address: str) -> bool:
    """Whether a server listening on `listen_host` already accepts connections to `address`."""
    return listen_host in ("0.0.0.0", "::", "") or ipaddress.ip_address(listen_host) == ipaddress.ip_address(address)


def data_store_url(data_dir: Path) -> str:
    """The default durable store: SQLite in the data dir."""
    return f"sqlite://{(data_dir / 'state.db').resolve()}"
