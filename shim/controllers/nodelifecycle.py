"""Node lifecycle: a node that stops heartbeating becomes Ready=Unknown and tainted, and its pods are evicted.

Three parts of kube-controller-manager in one loop over nodes, leases and pods:
- node health (`pkg/controller/nodelifecycle`): a node whose Lease in `kube-node-lease` (or Ready heartbeat)
  is not renewed for `grace_period` gets Ready, MemoryPressure, DiskPressure and PIDPressure = Unknown
  ("NodeStatusUnknown"), and its pods Ready=False; node conditions map to `node.kubernetes.io/*` taints
  (NoSchedule for every condition, NoExecute for not-ready/unreachable), removed once the kubelet reports
  Ready=True again;
- taint eviction (`pkg/controller/tainteviction`): a pod on a node with NoExecute taints is deleted at once
  if it does not tolerate them all, else after the smallest `tolerationSeconds` of the tolerations used;
- pod GC of orphans (`pkg/controller/podgc`): pods bound to a node that has been gone for `pod_gc_quarantine`
  seconds are failed and force-deleted.

Unlike kube, evictions are not rate limited per zone, and there is no "all nodes down" disruption mode.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.client.supervise import keep_running, spawn
from shim.controllers.apierrors import missing_ok
from shim.controllers.podutil import now, parse_time, ready_condition
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import LEASES, NODES, PODS
from shim.machinery.timefmt import format_time

Obj = dict[str, Any]

PODS_BY_NODE = "node-controller/node"  # pods by spec.nodeName
NODE_LEASE_NAMESPACE = "kube-node-lease"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# condition type -> status -> the NoSchedule taint it means (nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
NO_EXECUTE_TAINTS = {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE}  # by Ready status
MANAGED_TAINTS = frozenset(
    {(key, "NoSchedule") for statuses in CONDITION_TAINTS.values() for key in statuses.values()}
    | {(TAINT_UNSCHEDULABLE, "NoSchedule")}
    | {(key, "NoExecute") for key in NO_EXECUTE_TAINTS.values()}
)
HEALTH_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")  # NetworkUnavailable is not ours


@dataclass
class _Health:
    """When the controller last saw a node alive (monotonic), and the heartbeats it compares against."""

    probe: float
    renew_time: str | None = None
    heartbeat: str | None = None


class NodeLifecycleController(Reconciler):
    """Keys: `node:NAME` (health and taints), `evict:NS/NAME` (taint eviction), `orphan:NS/NAME` (pod GC).

    `grace_period` is kube's --node-monitor-grace-period (here 40 s), `startup_grace_period` applies to a node
    that never reported Ready, `monitor_period` is how often nodes are checked, `pod_gc_quarantine` how long a
    node must stay gone before its pods are removed.
    """

    workers = 5

    def __init__(
        self,
        client: ApiClient,
        grace_period: float = 40.0,
        startup_grace_period: float = 60.0,
        monitor_period: float = 5.0,
        pod_gc_quarantine: float = 40.0,
        informers: SharedInformerFactory | None = None,
    ) -> None:
        super().__init__(client, "node-controller", informers)
        self.grace_period = grace_period
        self.startup_grace_period = startup_grace_period
        self.monitor_period = monitor_period
        self.pod_gc_quarantine = pod_gc_quarantine
        self._health: dict[str, _Health] = {}
        self._missing_since: dict[str, float] = {}  # node name -> when a pod was first found bound to it, absent
        self._monitor: asyncio.Task[None] | None = None
        self.nodes = self.watch(NODES, self._on_node)
        self.watch(LEASES, self._on_lease)
        self.pods = self.watch(PODS, self._on_pod)
        self.pods.add_indexer(PODS_BY_NODE, _node_of)

    def start(self) -> None:
        super().start()
        name = "node health monitor"
        self._monitor = spawn(keep_running(name, self._monitor_health, self.client.health), name)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        await super().stop()

    async def sync(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if kind == "node":
            await self._sync_node(name)
        elif kind == "evict":
            await self._sync_eviction(name)
        elif kind == "orphan":
            await self._sync_orphan(name)

    # -- node health -----------------------------------------------------------------------------------------

    async def _monitor_health(self) -> None:
        """Every monitor_period, queue the nodes whose grace ran out and are not yet marked Unknown."""
        while True:
            await asyncio.sleep(self.monitor_period)
            moment = time.monotonic()
            for node in self.nodes.list():
                if self._silent(node, moment) and not _all_unknown(node):
                    self.queue.add("node:" + node["metadata"]["name"])

    def _silent(self, node: Obj, moment: float) -> bool:
        """No lease renewal or Ready heartbeat observed for longer than the node's grace period."""
        health = self._health.get(node["metadata"]["name"])
        if health is None:
            return False
        grace = self.grace_period if _condition(node, "Ready") else self.startup_grace_period
        return moment - health.probe > grace

    async def _sync_node(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            return
        if self._silent(node, time.monotonic()) and not _all_unknown(node):
            node = await self._mark_unknown(node)
        if (_condition(node, "Ready") or {}).get("status") == "Unknown":
            await self._mark_pods_not_ready(name)  # again after a failure: pods already unready are skipped
        await self._reconcile_taints(node)

    async def _mark_unknown(self, node: Obj) -> Obj:
        """Set the health conditions Unknown (tryUpdateNodeHealth); the written node."""
        was_ready = (_condition(node, "Ready") or {}).get("status") == "True"
        updated = copy.deepcopy(node)
        conditions = updated.setdefault("status", {}).setdefault("conditions", [])
        stamp = format_time(now())
        for type_ in HEALTH_CONDITIONS:
            condition = next((c for c in conditions if c.get("type") == type_), None)
            if condition is None:
                conditions.append(
                    {
                        "type": type_,
                        "status": "Unknown",
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                        "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                        "lastTransitionTime": stamp,
                    }
                )
            elif condition.get("status") != "Unknown":
                condition.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=stamp,
                )
        written = await self.client.replace(NODES, updated, subresource="status")
        if was_ready:
            name = node["metadata"]["name"]
            self.events.emit(written, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        return written

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """MarkPodsNotReady: the Ready condition of every pod on the node goes False."""
        stamp = format_time(now())
        for pod in self.pods.by_index(PODS_BY_NODE, node_name):
            namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            ready = ready_condition(pod)
            if ready is None or ready.get("status") == "False":
                continue
            patch = {"status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": stamp}]}}
            with missing_ok():
                await self.client.patch(PODS, name, patch, namespace, "status", STRATEGIC_MERGE)
                self.events.emit(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def _reconcile_taints(self, node: Obj) -> None:
        """The taints the node's conditions call for, added (with timeAdded) or removed; others' taints kept."""
        taints = (node.get("spec") or {}).get("taints") or []
        ours = {(t.get("key"), t.get("effect")): t for t in taints if (t.get("key"), t.get("effect")) in MANAGED_TAINTS}
        wanted = condition_taints(node)
        if set(ours) == wanted:
            return
        stamp = format_time(now())
        kept = [t for t in taints if (t.get("key"), t.get("effect")) not in MANAGED_TAINTS]
        added = [ours.get(k) or {"key": k[0], "effect": k[1], "timeAdded": stamp} for k in sorted(wanted)]
        meta = node["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": {"taints": kept + added}}
        await self.client.patch(NODES, meta["name"], patch)

    # -- taint eviction --------------------------------------------------------------------------------------

    async def _sync_eviction(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        pod = self.pods.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None:
            return
        taints = [t for t in (node.get("spec") or {}).get("taints") or () if t.get("effect") == "NoExecute"]
        delay = eviction_delay(taints, (pod.get("spec") or {}).get("tolerations") or [], now())
        if delay is None:
            return
        if delay > 0:
            self.queue.add_after("evict:" + key, delay)
            return
        self.events.emit(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        await self._disrupt(pod, "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")
        with missing_ok():
            await self.client.delete(PODS, name, namespace)

    # -- pod GC of orphans -----------------------------------------------------------------------------------

    async def _sync_orphan(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        pod = self.pods.get(key)
        node_name = (pod or {}).get("spec", {}).get("nodeName")
        if pod is None or not node_name or self.nodes.get(node_name) is not None:
            return
        missing_since = self._missing_since.setdefault(node_name, time.monotonic())
        remaining = missing_since + self.pod_gc_quarantine - time.monotonic()
        if remaining > 0:
            self.queue.add_after("orphan:" + key, remaining)
            return
        try:
            await self.client.get(NODES, node_name)
            return  # it exists after all: the cache was behind
        except ApiException as exc:
            if exc.status != 404:
                raise
        await self._disrupt(pod, "DeletionByPodGC", "PodGC: node no longer exists", fail=True)
        with missing_ok():
            await self.client.delete(PODS, name, namespace, gracePeriodSeconds=0)

    async def _disrupt(self, pod: Obj, reason: str, message: str, fail: bool = False) -> None:
        """The DisruptionTarget condition saying why the pod goes (and phase Failed for an orphan)."""
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": format_time(now()),
        }
        status: Obj = {"conditions": [condition]}
        if fail and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            status["phase"] = "Failed"
        meta = pod["metadata"]
        with missing_ok():
            patch = {"status": status}
            await self.client.patch(PODS, meta["name"], patch, meta["namespace"], "status", STRATEGIC_MERGE)

    # -- informer events -------------------------------------------------------------------------------------

    async def _on_node(self, event: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if event == "DELETED":
            self._health.pop(name, None)
            self.events.emit(node, "Normal", "RemovingNode", f"Node {name} event: Removing Node {name} from Controller")
            for pod in self.pods.by_index(PODS_BY_NODE, name):
                self.queue.add("orphan:" + object_key(pod))
            return
        self._missing_since.pop(name, None)
        heartbeat = (_condition(node, "Ready") or {}).get("lastHeartbeatTime")
        health = self._health.get(name)
        if health is None:
            self._health[name] = _Health(time.monotonic(), heartbeat=heartbeat)
            if old is None:
                message = f"Node {name} event: Registered Node {name} in Controller"
                self.events.emit(node, "Normal", "RegisteredNode", message)
        elif heartbeat != health.heartbeat:
            health.heartbeat, health.probe = heartbeat, time.monotonic()
        self.queue.add("node:" + name)
        if old is None or _no_execute_taints(old) != _no_execute_taints(node):
            for pod in self.pods.by_index(PODS_BY_NODE, name):
                self.queue.add("evict:" + object_key(pod))

    async def _on_lease(self, event: str, lease: Obj, old: Obj | None) -> None:
        meta = lease["metadata"]
        if meta.get("namespace") != NODE_LEASE_NAMESPACE or event == "DELETED":
            return
        renew_time = (lease.get("spec") or {}).get("renewTime")
        health = self._health.setdefault(meta["name"], _Health(time.monotonic()))
        if renew_time and renew_time != health.renew_time:
            health.renew_time, health.probe = renew_time, time.monotonic()

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        key = object_key(pod)
        new_node = None if event == "DELETED" else (pod.get("spec") or {}).get("nodeName")
        if not new_node:
            return
        node = self.nodes.get(new_node)
        if node is None:
            self.queue.add("orphan:" + key)
        elif _no_execute_taints(node):
            self.queue.add("evict:" + key)


def _node_of(pod: Obj) -> list[str]:
    """The node a pod is bound to, for the pods-by-node index (none while unscheduled)."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    return [node_name] if node_name else []


def condition_taints(node: Obj) -> set[tuple[str, str]]:
    """The (key, effect) taints the node's conditions and spec.unschedulable call for."""
    wanted = set()
    for condition in (node.get("status") or {}).get("conditions") or ():
        key = CONDITION_TAINTS.get(condition.get("type"), {}).get(condition.get("status"))
        if key:
            wanted.add((key, "NoSchedule"))
        if condition.get("type") == "Ready" and condition.get("status") in NO_EXECUTE_TAINTS:
            wanted.add((NO_EXECUTE_TAINTS[condition["status"]], "NoExecute"))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.add((TAINT_UNSCHEDULABLE, "NoSchedule"))
    return wanted


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_delay(taints: list[Obj], tolerations: list[Obj], at: datetime) -> float | None:
    """Seconds until a pod with `tolerations` is evicted by NoExecute `taints`: 0 now, None never.

    Each taint must be tolerated (else 0); the clock is the smallest tolerationSeconds of the tolerations
    used, counted from when the first taint was added; a toleration without seconds tolerates forever.
    """
    if not taints:
        return None
    used = []
    for taint in taints:
        toleration = next((t for t in tolerations if tolerates(t, taint)), None)
        if toleration is None:
            return 0.0
        used.append(toleration)
    seconds = [t["tolerationSeconds"] for t in used if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    added = [moment for t in taints if (moment := parse_time(t.get("timeAdded"))) is not None]
    start = min(added) if added else at
    return max((start - at).total_seconds() + max(min(seconds), 0), 0.0)


def _condition(node: Obj, type_: str) -> Obj | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == type_), None)


def _all_unknown(node: Obj) -> bool:
    return all((_condition(node, t) or {}).get("status") == "Unknown" for t in HEALTH_CONDITIONS)


def _no_execute_taints(node: Obj) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or () if t.get("effect") == "NoExecute"]
