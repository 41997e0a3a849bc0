"""The scheduling queue (kube's internal/queue): an active heap (highest priority first, then oldest), a
back-off heap for pods that failed recently, and the unschedulable pods, which wait for a cluster event
that may help them (a node added, a pod deleted...) rather than being retried in a loop."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shim.scheduler.info import PodInfo

SCHEDULING_GATES = "SchedulingGates"  # rejected_by of a gated pod: only an update of the pod moves it
UNSCHEDULABLE_FLUSH_INTERVAL = 30.0


@dataclass(eq=False)
class QueuedPod:
    """A pending pod and its scheduling history."""

    info: PodInfo
    timestamp: float  # first enqueued: FIFO among equal priorities
    attempts: int = 0
    rejected_by: frozenset[str] = frozenset()  # plugins that rejected it last time
    backoff_until: float = 0.0
    unschedulable_since: float = 0.0
    seq: int = 0  # which heap entry is current


class SchedulingQueue:
    """Pending pods by key. `interest(event)` names the plugins whose rejections an event may lift."""

    def __init__(
        self,
        interest: Callable[[str], frozenset[str]],
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_unschedulable: float = 300.0,
    ) -> None:
        self._interest = interest
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_unschedulable = max_unschedulable
        self._seq = itertools.count()
        self._active: dict[str, QueuedPod] = {}
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._backoff: dict[str, QueuedPod] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, QueuedPod] = {}  # popped, not yet bound or back in the queue
        self._moved_since_pop: set[str] = set()  # plugins an event spoke to during the current attempt
        self._any_move_since_pop = False
        self._ready = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def __contains__(self, key: str) -> bool:
        return key in self._active or key in self._backoff or key in self._unschedulable or key in self._in_flight

    # -- pods coming and going ----------------------------------------------------------------------------

    def add(self, info: PodInfo) -> None:
        """A new pending pod (or a new version of one already known)."""
        if info.key in self:
            self.update(info)
            return
        queued = QueuedPod(info, time.monotonic())
        if info.scheduling_gated:
            self._park(queued, frozenset((SCHEDULING_GATES,)))
        else:
            self._push_active(queued)

    def update(self, info: PodInfo) -> None:
        """A pending pod changed. If it waits as unschedulable and its spec or labels changed, retry it."""
        key = info.key
        for where in (self._active, self._backoff, self._in_flight):
            if key in where:
                where[key].info = info
                return
        queued = self._unschedulable.get(key)
        if queued is None:
            self.add(info)
            return
        old, queued.info = queued.info, info
        if info.scheduling_gated:
            return
        if SCHEDULING_GATES in queued.rejected_by or _scheduling_relevant_change(old, info):
            del self._unschedulable[key]
            self._requeue(queued)

    def delete(self, key: str) -> None:
        """The pod is gone or bound: forget it wherever it is (stale heap entries are skipped later)."""
        for where in (self._active, self._backoff, self._unschedulable, self._in_flight):
            where.pop(key, None)

    # -- the scheduling loop's side -----------------------------------------------------------------------

    async def pop(self) -> QueuedPod:
        """The next pod to schedule, waiting until there is one."""
        while True:
            while self._active_heap:
                _, _, seq, key = heapq.heappop(self._active_heap)
                queued = self._active.get(key)
                if queued is None or queued.seq != seq:
                    continue
                del self._active[key]
                queued.attempts += 1
                self._in_flight[key] = queued
                self._moved_since_pop.clear()
                self._any_move_since_pop = False
                return queued
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: str) -> None:
        """The pod was bound: it leaves the queue for good."""
        self._in_flight.pop(key, None)

    def add_unschedulable(self, queued: QueuedPod, rejected_by: frozenset[str]) -> None:
        """No node fits. Wait for an event that may help, unless one already came during this attempt."""
        if self._in_flight.pop(queued.info.key, None) is None:
            return  # deleted or bound meanwhile
        queued.backoff_until = time.monotonic() + self._backoff_duration(queued.attempts)
        if self._any_move_since_pop and (not rejected_by or rejected_by & self._moved_since_pop):
            queued.rejected_by = rejected_by
            self._push_backoff(queued)
        else:
            self._park(queued, rejected_by)

    def add_backoff(self, queued: QueuedPod) -> None:
        """Retry after the pod's back-off (a binding or API error)."""
        if self._in_flight.pop(queued.info.key, None) is None:
            return
        queued.backoff_until = time.monotonic() + self._backoff_duration(queued.attempts)
        self._push_backoff(queued)

    # -- cluster events -----------------------------------------------------------------------------------

    def move_all(self, event: str) -> None:
        """A cluster event: retry the unschedulable pods that a plugin interested in it had rejected."""
        interested = self._interest(event)
        self._moved_since_pop |= interested
        self._any_move_since_pop = True
        if not self._unschedulable:
            return
        for key, queued in list(self._unschedulable.items()):
            if SCHEDULING_GATES in queued.rejected_by:
                continue
            if not queued.rejected_by or queued.rejected_by & interested:
                del self._unschedulable[key]
                self._requeue(queued)

    def flush_unschedulable(self) -> None:
        """Retry pods that have waited longer than max_unschedulable for a helpful event."""
        deadline = time.monotonic() - self._max_unschedulable
        for key, queued in list(self._unschedulable.items()):
            if queued.unschedulable_since <= deadline and SCHEDULING_GATES not in queued.rejected_by:
                del self._unschedulable[key]
                self._requeue(queued)

    async def run(self) -> None:
        """Forever: the periodic flush of long-waiting unschedulable pods."""
        try:
            while True:
                await asyncio.sleep(UNSCHEDULABLE_FLUSH_INTERVAL)
                self.flush_unschedulable()
        finally:
            if self._timer is not None:
                self._timer.cancel()

    # -- internals ----------------------------------------------------------------------------------------

    def _park(self, queued: QueuedPod, rejected_by: frozenset[str]) -> None:
        queued.rejected_by = rejected_by
        queued.unschedulable_since = time.monotonic()
        self._unschedulable[queued.info.key] = queued

    def _requeue(self, queued: QueuedPod) -> None:
        if queued.backoff_until > time.monotonic():
            self._push_backoff(queued)
        else:
            self._push_active(queued)

    def _push_active(self, queued: QueuedPod) -> None:
        queued.seq = next(self._seq)
        self._active[queued.info.key] = queued
        heapq.heappush(self._active_heap, (-queued.info.priority, queued.timestamp, queued.seq, queued.info.key))
        self._ready.set()

    def _push_backoff(self, queued: QueuedPod) -> None:
        queued.seq = next(self._seq)
        self._backoff[queued.info.key] = queued
        heapq.heappush(self._backoff_heap, (queued.backoff_until, queued.seq, queued.info.key))
        self._arm_timer()

    def _flush_backoff(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff_heap)
            queued = self._backoff.get(key)
            if queued is not None and queued.seq == seq:
                del self._backoff[key]
                self._push_active(queued)
        self._arm_timer()

    def _arm_timer(self) -> None:
        """One timer, for the earliest back-off to end (no polling)."""
        if not self._backoff_heap:
            return
        due = self._backoff_heap[0][0]
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(max(due - time.monotonic(), 0.0), self._flush_backoff)

    def _backoff_duration(self, attempts: int) -> float:
        return min(self._initial_backoff * 2 ** max(attempts - 1, 0), self._max_backoff)


def _scheduling_relevant_change(old: PodInfo, new: PodInfo) -> bool:
    """kube's isPodUpdated: anything but status and bookkeeping metadata changed (our own status writes
    must not retry the pod, or an unschedulable pod would loop)."""
    old_meta, new_meta = old.pod["metadata"], new.pod["metadata"]
    return (
        old.pod.get("spec") != new.pod.get("spec")
        or old_meta.get("labels") != new_meta.get("labels")
        or old_meta.get("annotations") != new_meta.get("annotations")
    )


class Nominator:
    """Pods that preemption nominated to a node: the room their victims leave is held for them."""

    def __init__(self) -> None:
        self._by_node: dict[str, dict[str, PodInfo]] = {}
        self._node_of: dict[str, str] = {}

    def set(self, info: PodInfo, node: str) -> None:
        self.remove(info.key)
        self._by_node.setdefault(node, {})[info.key] = info
        self._node_of[info.key] = node

    def remove(self, key: str) -> None:
        node = self._node_of.pop(key, None)
        if node is not None:
            pods = self._by_node[node]
            del pods[key]
            if not pods:
                del self._by_node[node]

    def node_for(self, pod: PodInfo) -> str:
        """Where the pod is nominated: our own nomination, else what its status says."""
        return self._node_of.get(pod.key) or pod.nominated_node

    def pods_on(self, node: str) -> Iterable[PodInfo]:
        return self._by_node.get(node, {}).values()

    def __bool__(self) -> bool:
        return bool(self._node_of)
