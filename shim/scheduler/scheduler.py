"""The scheduler: an API client that watches nodes and pods, assigns each pending pod of its scheduler name
to a node, and binds it through `POST pods/NAME/binding`.

One loop takes pods from the queue one at a time and decides synchronously (filters, scores, preemption's
dry run); the binding and every other write happen in the background while the next pod is decided. The
pod is *assumed* onto its node in the cache at once, so later decisions already count it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.client.events_v1 import SeriesRecorder
from shim.client.supervise import keep_running, spawn
from shim.machinery.resources import (
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
)
from shim.scheduler.algorithm import NodePicker
from shim.scheduler.cache import ASSUMED_POD_TTL, Cache
from shim.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    NODE_ADD,
    NODE_UPDATE,
    CycleState,
    FitError,
    Framework,
    Plugin,
)
from shim.scheduler.info import PodInfo
from shim.scheduler.plugins import DEFAULT_WEIGHTS, default_plugins
from shim.scheduler.plugins.volume_binding import PV_CHANGE, PVC_CHANGE, STORAGE_CLASS_CHANGE, VolumeBinding
from shim.scheduler.plugins.volume_restrictions import VolumeRestrictions
from shim.scheduler.preemption import Candidate, Preemptor
from shim.scheduler.queue import Nominator, QueuedPod, SchedulingQueue
from shim.scheduler.writer import PodWriter

log = logging.getLogger("shim.scheduler")

# kube-scheduler's pod informer leaves these out (field selector status.phase!=...): they hold no resources and
# are never scheduled. Here the scheduler shares the process's one pod informer and leaves them out itself.
TERMINAL_PHASES = ("Succeeded", "Failed")
STOP_GRACE = 10.0  # seconds stop() waits for bindings and events under way
ASSUMED_CLEANUP_PERIOD = 1.0  # kube-scheduler's cleanAssumedPeriod

_STORAGE_RESOURCES = (PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, STORAGE_CLASSES)  # what VolumeBinding reads

Obj = dict[str, Any]


@dataclass
class SchedulerStats:
    """Counters since start (for benchmarks and logs)."""

    attempts: int = 0
    bound: int = 0
    unschedulable: int = 0
    preemptions: int = 0
    bind_errors: int = 0


class Scheduler:
    """`Scheduler(client).start()`, later `await stop()`: schedules the pods whose schedulerName is `name`.

    The scheduler owns `client` and closes it on stop. Its informers come from `informers`, the process's
    shared factory (stopped by whoever built it); without one it builds and stops its own.
    `percentage_of_nodes_to_score` 0 means kube's adaptive default; `plugins`/`weights` replace the default
    profile; an assumed pod whose binding the watch has not confirmed `assumed_pod_ttl` seconds after it was
    written is forgotten.
    """

    def __init__(
        self,
        client: ApiClient,
        name: str = "default-scheduler",
        *,
        percentage_of_nodes_to_score: int = 0,
        bind_concurrency: int = 64,
        plugins: Sequence[Plugin] | None = None,
        weights: dict[str, int] | None = None,
        assumed_pod_ttl: float = ASSUMED_POD_TTL,
        informers: SharedInformerFactory | None = None,
    ) -> None:
        self.client = client
        self.informers = informers if informers is not None else SharedInformerFactory(client)
        self._owns_informers = informers is None
        self.name = name
        self.stats = SchedulerStats()
        self.cache = Cache(assumed_pod_ttl)
        storage = [self.informers.informer_for(r) for r in _STORAGE_RESOURCES]
        volume_plugins: list[Plugin] = [
            VolumeRestrictions(self.cache.claim_users, storage[0]),
            VolumeBinding(client, *storage),
        ]
        self.framework = Framework(plugins or default_plugins(self.cache, volume_plugins), weights or DEFAULT_WEIGHTS)
        self.queue = SchedulingQueue(self.framework.interested_plugins)
        self.nominator = Nominator()
        self.picker = NodePicker(self.framework, self.cache, self.nominator, percentage_of_nodes_to_score)
        self.preemptor = Preemptor(self.picker)
        self.writer = PodWriter(client, SeriesRecorder(client, name), name, bind_concurrency)
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self._pods = self.informers.informer_for(PODS)
        self._registrations = [
            self.informers.informer_for(NODES).add_event_handler(self._on_node),
            self._pods.add_event_handler(self._on_pod),
            self.informers.informer_for(NAMESPACES).add_event_handler(self._on_namespace),
            *(
                informer.add_event_handler(self._retry_after(event))
                for informer, event in zip(storage, (PVC_CHANGE, PV_CHANGE, STORAGE_CLASS_CHANGE), strict=True)
            ),
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start watching and scheduling (in the running event loop)."""
        self.informers.start()
        loops = {
            "scheduling loop": self._run,
            "scheduling queue flush": self.queue.run,
            "assumed pod expiry": self._expire_assumed_pods,
        }
        self._tasks = [spawn(keep_running(name, loop, self.client.health), name) for name, loop in loops.items()]

    async def synced(self) -> None:
        """Wait until the first list of nodes, pods and namespaces is in the cache."""
        await asyncio.gather(*(registration.synced.wait() for registration in self._registrations))

    async def stop(self) -> None:
        """Stop scheduling, let the writes under way finish, close the client."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for registration in self._registrations:
            registration.informer.remove_event_handler(registration)
        if self._owns_informers:
            await self.informers.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.writer.drain(), STOP_GRACE)
        await self.writer.close()
        await self.client.close()

    # -- the scheduling loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.synced()
        while True:
            queued = await self.queue.pop()
            try:
                await self._schedule_one(queued)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling %s failed", queued.info.key)
                self.queue.add_backoff(queued)
            await asyncio.sleep(0)  # let bindings and watch events through between pods

    async def _schedule_one(self, queued: QueuedPod) -> None:
        pod = queued.info
        self.stats.attempts += 1
        state = CycleState(self.cache.node_list(), self.namespace_labels)
        filters = self.framework.pre_filter(state, pod)
        result = self.picker.schedule(state, pod, filters)
        if isinstance(result, str):
            self.cache.assume(pod, result)
            self.framework.reserve(pod, result)
            self.nominator.remove(pod.key)
            self.writer.submit(pod.key, lambda: self._bind(queued, result))
            return
        candidate = None
        if state.nodes:
            outcome = self.preemptor.find(state, pod, filters, result)
            if isinstance(outcome, Candidate):
                candidate = outcome
                await self._preempt(pod, candidate)
            else:
                result.post_filter_message = f"preemption: {outcome}"
        self._unschedulable(queued, result, candidate.node.name if candidate else None)

    async def _bind(self, queued: QueuedPod, node: str) -> None:
        pod = queued.info
        try:
            await self.framework.pre_bind(pod, node)
            await self.writer.bind(pod, node)
        except Exception as exc:  # whatever the cause, the room it was assumed to take must not leak
            self.stats.bind_errors += 1
            self.cache.forget(pod.key)
            self.framework.unreserve(pod, node)
            self.queue.move_all(ASSIGNED_POD_DELETE)  # the room it held is free again
            latest = self._live_pod(pod.key)  # updates that came while it was assumed were held back
            if latest is None or (isinstance(exc, ApiException) and exc.status == 409):
                self.queue.done(pod.key)  # deleted, or bound by someone else: the watch tells the rest
            else:
                queued.info = PodInfo(latest)
                self.queue.add_backoff(queued)
            expected = isinstance(exc, (ApiException, aiohttp.ClientError, TimeoutError))
            log.log(logging.INFO if expected else logging.ERROR, "binding %s to %s failed: %s: %s", pod.key, node,
                    type(exc).__name__, exc, exc_info=None if expected else exc)  # fmt: skip
            return
        self.cache.finish_binding(pod.key)
        self.queue.done(pod.key)
        self.stats.bound += 1
        self.writer.scheduled(pod, node)

    def _unschedulable(self, queued: QueuedPod, fit: FitError, nominated_node: str | None) -> None:
        pod = queued.info
        self.stats.unschedulable += 1
        message = fit.message()
        self.queue.add_unschedulable(queued, fit.rejected_by)
        if nominated_node:
            self.nominator.set(pod, nominated_node)
        self.writer.submit(pod.key, lambda: self.writer.unschedulable(pod, message, nominated_node))

    async def _preempt(self, pod: PodInfo, candidate: Candidate) -> None:
        """Evict the victims and drop lower-priority nominations to the node, as kube does before it
        nominates the preemptor (synchronously: the next decision must see the victims terminating)."""
        node = candidate.node.name
        self.stats.preemptions += 1
        await asyncio.gather(*(self.writer.evict(victim, pod, node) for victim in candidate.victims))
        for other in list(self.nominator.pods_on(node)):
            if other.priority < pod.priority:
                self.nominator.remove(other.key)
                self.writer.submit(other.key, functools.partial(self.writer.clear_nomination, other))

    async def _expire_assumed_pods(self) -> None:
        """Forget assumed pods whose binding the watch never confirmed (kube's cleanupAssumedPods); each is
        then taken as it is now: bound (placed where it is), or pending (queued again)."""
        while True:
            await asyncio.sleep(ASSUMED_CLEANUP_PERIOD)
            expired = self.cache.expire_assumed()
            for pod in expired:
                log.warning("assumed pod %s expired: its binding was never confirmed", pod.key)
                if (latest := self._live_pod(pod.key)) is not None:
                    await self._on_pod("MODIFIED", latest, latest)
            if expired:
                self.queue.move_all(ASSIGNED_POD_DELETE)  # the room they held is free again

    # -- watch events -------------------------------------------------------------------------------------

    async def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if kind == "DELETED":
            self.cache.remove_node(name)
            return
        known = self.cache.nodes.get(name)
        is_new = known is None or known.node is None
        if self.cache.set_node(node):
            self.queue.move_all(NODE_ADD if is_new else NODE_UPDATE)

    def _live_pod(self, key: str) -> Obj | None:
        """The cached pod under `key`, unless it is gone or has finished."""
        pod = self._pods.get(key)
        return pod if pod is not None and not _terminal(pod) else None

    async def _on_pod(self, kind: str, obj: Obj, old: Obj | None) -> None:
        key = object_key(obj)
        if kind == "DELETED" or _terminal(obj):  # a pod that finished leaves the scheduler's view, as deleted
            self.nominator.remove(key)
            self.queue.delete(key)
            if self.cache.remove_pod(key) is not None:
                self.queue.move_all(ASSIGNED_POD_DELETE)
            return
        pod = PodInfo(obj)
        if pod.node_name:
            self._on_assigned_pod(pod)
        elif pod.scheduler_name == self.name and not pod.terminating:
            if self.cache.is_assumed(key):
                return  # its binding is under way
            if pod.nominated_node:
                self.nominator.set(pod, pod.nominated_node)
            if pod.scheduling_gated:  # waits in the queue until an update removes the gates
                self.writer.submit(key, lambda: self.writer.gated(pod))
            self.queue.add(pod)
        else:
            self.queue.delete(key)

    def _on_assigned_pod(self, pod: PodInfo) -> None:
        self.queue.delete(pod.key)
        self.nominator.remove(pod.key)
        confirms_assumption = self.cache.is_assumed(pod.key)
        previous = self.cache.pod(pod.key)
        self.cache.set_pod(pod)
        if confirms_assumption:
            return  # already counted where it is: nothing new for waiting pods
        if previous is None:
            self.queue.move_all(ASSIGNED_POD_ADD)
        elif (
            previous.labels != pod.labels
            or previous.requests != pod.requests
            or previous.terminating != pod.terminating
        ):
            self.queue.move_all(ASSIGNED_POD_UPDATE)

    def _retry_after(self, event: str) -> Any:
        """A handler that retries the pods waiting for `event` (a claim, volume or class changed)."""

        async def handler(kind: str, obj: Obj, old: Obj | None) -> None:
            self.queue.move_all(event)

        return handler

    async def _on_namespace(self, kind: str, namespace: Obj, old: Obj | None) -> None:
        name = namespace["metadata"]["name"]
        if kind == "DELETED":
            self.namespace_labels.pop(name, None)
        else:
            self.namespace_labels[name] = namespace["metadata"].get("labels") or {}


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
