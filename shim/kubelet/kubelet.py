"""The node agent: registers its Node, heartbeats its Lease, and runs the pods bound to it through a runtime.

Pods arrive from an informer on `spec.nodeName=<node>`; each gets a `PodWorker`. Runtime events (a container
died) wake the pod's worker; a slow periodic resync is the safety net. On start, the sandboxes the runtime
already has are adopted by their pods, and those whose pod is gone are removed: nothing starts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from shim.client import ApiClient, ClusterAccess, SharedInformerFactory
from shim.client.events import EventRecorder
from shim.client.informer import Registration
from shim.kubelet.backoff import Backoff
from shim.kubelet.config import KubeletOptions
from shim.kubelet.host import host_facts, primary_ip
from shim.kubelet.images import ImagePuller
from shim.kubelet.node import NodeReporter
from shim.kubelet.paths import PodPaths
from shim.kubelet.podworker import NodeContext, PodWorker
from shim.machinery.resources import PODS, SERVICES
from shim.runtime.base import Runtime, SandboxStatus

Obj = dict[str, Any]

log = logging.getLogger("shim.kubelet")

RUNTIME_EVENTS_RETRY = 1.0
RESYNC_SPREAD = 5.0  # seconds over which one periodic resync is spread across the pods
REACH_RETRY_MIN, REACH_RETRY_MAX = 0.2, 7.0


class Kubelet:
    """`await Kubelet(client, runtime, "node-1", data_dir).start()`, later `await kubelet.stop()`.

    The client may be shared (several simulated nodes in one process); the agent never closes it. The runtime
    is started and closed by the agent. `data_dir` is this node's own directory. `informers` is the process's
    shared factory (its pods and services informers come from it; whoever built it stops it); without one the
    agent builds and stops its own.
    """

    def __init__(
        self,
        client: ApiClient,
        runtime: Runtime,
        node_name: str,
        data_dir: Path,
        options: KubeletOptions | None = None,
        informers: SharedInformerFactory | None = None,
    ) -> None:
        self.client = client
        self.informers = informers if informers is not None else SharedInformerFactory(client)
        self._owns_informers = informers is None
        self.runtime = runtime
        self.node_name = node_name
        self.data_dir = Path(data_dir)
        self.options = options or KubeletOptions()
        self.node: NodeReporter | None = None
        self._context: NodeContext | None = None
        self._services = self.informers.informer_for(SERVICES)  # a lister: pods' service env vars read its cache
        self._registrations: list[Registration] = []
        self._workers: dict[str, PodWorker] = {}  # by pod uid
        self._uids: dict[str, str] = {}  # "namespace/name" -> uid of the pod of that name
        self._unclaimed: dict[str, list[SandboxStatus]] = {}  # sandboxes found at start, by pod uid
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Register the node, adopt what the runtime runs, and start serving this node's pods."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self.runtime.start()
        facts = await asyncio.to_thread(host_facts, self.data_dir)
        host_ip = self.options.node_ip
        if not host_ip:  # (not `or await ...`: mypy then infers the thread's result as optional)
            host_ip = await asyncio.to_thread(primary_ip)
        self.node = NodeReporter(self.client, self.runtime, self.node_name, self.data_dir, facts, host_ip, self.options)
        await self._until_reachable(self.node.register)
        await self._until_reachable(self.node.renew_lease)
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        version = self.node.runtime_version
        self._context = NodeContext(
            client=self.client,
            runtime=self.runtime,
            node_name=self.node_name,
            data_dir=self.data_dir,
            options=self.options,
            recorder=EventRecorder(self.client, "kubelet", self.node_name),
            images=ImagePuller(self.runtime),
            restarts=Backoff(self.options.restart_backoff_initial, self.options.restart_backoff_max),
            http=self._http,
            host_ip=host_ip,
            allocatable=self.node.allocatable,
            runtime_scheme=version.split("://", 1)[0] if "://" in version else version,
            services=self._services_in,
            cluster_dns=self.cluster_dns,
        )
        for sandbox in await self.runtime.list_sandboxes():
            self._unclaimed.setdefault(sandbox.uid, []).append(sandbox)
        self._spawn(self._runtime_events())
        self.informers.start()
        await self._services.synced.wait()  # as kubelet: no pod starts before service env vars are known
        # this node's pods (a filtered informer of its own): asked for only now that their workers can start
        pods = self.informers.informer_for(PODS, fieldSelector=f"spec.nodeName={self.node_name}")
        registration = pods.add_event_handler(self._on_pod_event)
        self._registrations.append(registration)
        await registration.synced.wait()
        await self._remove_orphans()
        self._spawn(self.node.run_lease())
        self._spawn(self.node.run_status())
        self._spawn(self._resync())

    async def stop(self) -> None:
        """Stop the agent; pods keep running (a restarted agent adopts them)."""
        for registration in self._registrations:
            registration.informer.remove_event_handler(registration)
        if self._owns_informers:
            await self.informers.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in list(self._workers.values())), return_exceptions=True)
        self._workers.clear()
        if self._http is not None:
            await self._http.close()
        await self.runtime.close()

    def _services_in(self, namespace: str) -> list[Obj]:
        return self._services.in_namespace(namespace)

    def cluster_dns(self) -> tuple[str, ...]:
        """Nameservers of ClusterFirst pods: the configured ones (kubelet's clusterDNS), else the cluster IP of
        the `kube-dns` Service in `kube-system` once it exists (none yet: the pod gets the host's resolvers,
        as kubelet falls back to dnsPolicy Default without a cluster DNS)."""
        if self.options.cluster_dns:
            return self.options.cluster_dns
        service = self._services.get("kube-system/kube-dns")
        ips = (service or {}).get("spec", {}).get("clusterIPs") or []
        return tuple(ip for ip in ips if ip and ip != "None")

    def pod_lookup(self, namespace: str, name: str) -> tuple[Obj, str | None, dict[str, str]] | None:
        """For the streaming server: (pod, sandbox id, container name -> newest run id) of a pod on this node."""
        worker = self._workers.get(self._uids.get(f"{namespace}/{name}", ""))
        if worker is None:
            return None
        return worker.pod, worker.sandbox_id, dict(worker.newest)

    # -- events ------------------------------------------------------------------------------------------------

    async def _on_pod_event(self, kind: str, pod: Obj, old: Obj | None) -> None:
        meta = pod["metadata"]
        key, uid = f"{meta['namespace']}/{meta['name']}", meta["uid"]
        previous = self._uids.get(key)
        if previous is not None and previous != uid and previous in self._workers:
            self._workers[previous].deleted()  # replaced by a new pod of the same name
        if kind == "DELETED":
            self._uids.pop(key, None)
            if uid in self._workers:
                self._workers[uid].deleted()
            return
        self._uids[key] = uid
        worker = self._workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        assert self._context is not None
        claimed = self._unclaimed.pop(uid, [])
        worker = PodWorker(self._context, pod, claimed[0] if claimed else None)
        self._workers[uid] = worker
        worker.start(self._worker_done)
        for extra in claimed[1:]:  # more than one sandbox for a pod: keep one
            await self._remove_sandbox(extra)

    def _worker_done(self, uid: str) -> None:
        self._workers.pop(uid, None)

    async def _runtime_events(self) -> None:
        """Wake a pod's worker when one of its containers died (pushed by the runtime, not polled)."""
        while True:
            try:
                async for event in self.runtime.events():
                    if event.kind in ("died", "oom") and (worker := self._workers.get(event.pod_uid)):
                        worker.wake()
                return  # the runtime closed
            except Exception as exc:  # the stream broke: resubscribe (a resync catches what was missed)
                log.warning("node %s: runtime events: %s", self.node_name, exc)
                await asyncio.sleep(RUNTIME_EVENTS_RETRY)
                for worker in list(self._workers.values()):
                    worker.wake()

    async def _remove_orphans(self) -> None:
        """Sandboxes of pods that no longer exist (deleted while the agent was away) go, with their files."""
        for uid, sandboxes in list(self._unclaimed.items()):
            if uid in self._workers:
                continue
            for sandbox in sandboxes:
                log.info("node %s: removing orphaned sandbox of %s/%s", self.node_name, sandbox.namespace, sandbox.name)
                await self._remove_sandbox(sandbox)
            PodPaths(self.data_dir, uid).remove()
            del self._unclaimed[uid]

    async def _remove_sandbox(self, sandbox: SandboxStatus) -> None:
        try:
            await self.runtime.remove_sandbox(sandbox.id)
        except Exception as exc:  # never fatal here: a sandbox left behind is found again at the next start
            log.warning("node %s: removing sandbox %s: %s", self.node_name, sandbox.id, exc)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.options.resync_interval)
            spread = min(RESYNC_SPREAD, self.options.resync_interval)
            loop = asyncio.get_running_loop()
            for worker in list(self._workers.values()):
                loop.call_later(random.uniform(0, spread), worker.resync)

    async def _until_reachable(self, call: Callable[[], Awaitable[None]]) -> None:
        """Retry a call while the API server cannot be reached (a node may start before its server)."""
        delay = REACH_RETRY_MIN
        while True:
            try:
                return await call()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("node %s: API server unreachable (%s); retrying in %.1fs", self.node_name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, REACH_RETRY_MAX)

    def _spawn(self, coroutine: Any) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine))


async def run_node(
    access: ClusterAccess,
    runtime: Runtime,
    node_name: str,
    data_dir: Path,
    options: KubeletOptions | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one node agent with its own API client until `stop` is set (or the task is cancelled)."""
    async with ApiClient(access, user_agent=f"kubelet/{node_name}") as client:
        kubelet = Kubelet(client, runtime, node_name, data_dir, options)
        await kubelet.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            with contextlib.suppress(Exception):
                await kubelet.stop()
