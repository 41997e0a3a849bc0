"""Every write the scheduler makes through the API: bindings, PodScheduled conditions, nominations,
preemption's evictions, and their events. Writes run in the background, in order per pod, so that a
pod's "Unschedulable" condition can never land after its binding. Events are events.k8s.io/v1 Events, as
kube-scheduler records them; they go out one at a time from their own queue, as client-go's event broadcaster
sends them, so that they never hold up bindings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shim.client import ApiClient, ApiException
from shim.client.events_v1 import SeriesRecorder
from shim.client.supervise import keep_running, spawn
from shim.machinery.resources import PODS
from shim.machinery.timefmt import now_rfc3339
from shim.scheduler.info import PodInfo

log = logging.getLogger("shim.scheduler")

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"
MAX_QUEUED_EVENTS = 10_000  # beyond this events are dropped, as the broadcaster drops them when its queue is full
SERIES_TICK = 30.0  # how often ended event series are looked for while no event arrives

Obj = dict[str, Any]


class PodWriter:
    """Runs writes concurrently (at most `concurrency` requests at once), one after another per pod."""

    def __init__(self, client: ApiClient, recorder: SeriesRecorder, scheduler_name: str, concurrency: int = 64) -> None:
        self.client = client
        self.recorder = recorder
        self.scheduler_name = scheduler_name
        self._limit = asyncio.Semaphore(concurrency)
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._events: asyncio.Queue[tuple[Obj, Obj | None, str, str, str, str]] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._event_sender: asyncio.Task[None] | None = None

    def submit(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` after the pod's earlier writes; errors are logged, never raised."""
        previous = self._tails.get(key)
        task = spawn(self._after(previous, work), f"scheduler write {key}")
        self._tails[key] = task
        task.add_done_callback(lambda t: self._tails.pop(key, None) if self._tails.get(key) is t else None)

    async def drain(self) -> None:
        """Wait for every submitted write and queued event."""
        while self._tails:
            await asyncio.gather(*self._tails.values(), return_exceptions=True)
        if self._event_sender is not None:
            await self._events.join()

    async def close(self) -> None:
        """Stop sending events (the ones still queued are dropped)."""
        if self._event_sender is not None:
            self._event_sender.cancel()
            await asyncio.gather(self._event_sender, return_exceptions=True)
            self._event_sender = None

    def event(self, obj: Obj, type_: str, reason: str, action: str, note: str, related: Obj | None = None) -> None:
        """Queue an event for the sender (repeats become a series); dropped when the queue is full."""
        if self._event_sender is None:
            self._event_sender = spawn(keep_running("scheduler events", self._send_events), "scheduler events")
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait((obj, related, type_, reason, action, note))

    async def bind(self, pod: PodInfo, node: str) -> None:
        """POST pods/NAME/binding (DefaultBinder); ApiException when the API refuses."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "target": {"kind": "Node", "name": node},
        }
        async with self._limit:
            await self.client.request("POST", PODS.path(pod.namespace, pod.name, "binding"), body)

    def scheduled(self, pod: PodInfo, node: str) -> None:
        self.event(
            pod.pod, "Normal", "Scheduled", "Binding", f"Successfully assigned {pod.namespace}/{pod.name} to {node}"
        )

    async def unschedulable(self, pod: PodInfo, message: str, nominated_node: str | None) -> None:
        """The FailedScheduling event, and PodScheduled=False/Unschedulable (plus the nomination) on the pod
        when they differ from what it already says."""
        self.event(pod.pod, "Warning", "FailedScheduling", "Scheduling", message)
        status: Obj = {}
        if _condition_changed(pod.pod, "Unschedulable", message):
            status["conditions"] = [_scheduled_condition(pod.pod, "Unschedulable", message)]
        if nominated_node is not None and nominated_node != pod.nominated_node:
            status["nominatedNodeName"] = nominated_node
        if status:
            await self._patch_status(pod, status)

    async def gated(self, pod: PodInfo) -> None:
        """PodScheduled=False/SchedulingGated, as kube writes for a pod with scheduling gates."""
        if _condition_changed(pod.pod, "SchedulingGated", GATED_MESSAGE):
            await self._patch_status(
                pod, {"conditions": [_scheduled_condition(pod.pod, "SchedulingGated", GATED_MESSAGE)]}
            )

    async def clear_nomination(self, pod: PodInfo) -> None:
        await self._patch_status(pod, {"nominatedNodeName": None})

    async def evict(self, victim: PodInfo, preemptor: PodInfo, node: str) -> None:
        """Preemption: mark the victim DisruptionTarget, delete it with its own grace period, record why."""
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": f"{self.scheduler_name}: preempting to accommodate a higher priority pod",
            "lastTransitionTime": now_rfc3339(),
        }
        try:
            await self._patch_status(victim, {"conditions": [condition]})
            async with self._limit:
                await self.client.delete(PODS, victim.name, victim.namespace)
        except ApiException as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise
        message = f"Preempted by pod {preemptor.uid} on node {node}"
        self.event(victim.pod, "Normal", "Preempted", "Preempting", message, related=preemptor.pod)

    async def _patch_status(self, pod: PodInfo, status: Obj) -> None:
        async with self._limit:
            await self.client.patch(
                PODS, pod.name, {"status": status}, pod.namespace, "status", content_type=STRATEGIC_MERGE
            )

    async def _send_events(self) -> None:
        while True:
            try:
                obj, related, type_, reason, action, note = await asyncio.wait_for(self._events.get(), SERIES_TICK)
            except TimeoutError:
                await self.recorder.tick()
                continue
            try:
                await self.recorder.event(obj, related, type_, reason, action, note)
            finally:
                self._events.task_done()

    async def _after(self, previous: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed write is retried by the next scheduling attempt, if needed
            log.warning("scheduler write failed: %s", exc)


def _condition_changed(pod: Obj, reason: str, message: str) -> bool:
    current = _current_condition(pod)
    return not (
        current
        and current.get("status") == "False"
        and current.get("reason") == reason
        and current.get("message") == message
    )


def _scheduled_condition(pod: Obj, reason: str, message: str) -> Obj:
    """PodScheduled=False; the transition time stays while the status does not change."""
    current = _current_condition(pod)
    since = current.get("lastTransitionTime") if current and current.get("status") == "False" else None
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": None,
        "lastTransitionTime": since or now_rfc3339(),
    }


def _current_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled":
            return condition
    return None
