"""ReplicaSet controller: keeps `spec.replicas` pods matching the selector, like kube-controller-manager's.

It also runs v1 ReplicationControllers, as kube's replication manager runs this same logic: `ReplicatedKind`
says what differs (resource, owner reference, and the RC's plain label-map selector).

Follows `pkg/controller/replicaset/replica_set.go` and `replica_set_utils.go`: pods are claimed by selector
(orphans adopted, non-matching pods released), missing pods are created from the template in slow-start
batches (1, 2, 4, ...), extra pods are deleted in kube's order, and expectations keep a burst of informer
events from creating or deleting the same replicas twice. Status carries replicas, fullyLabeledReplicas,
readyReplicas, availableReplicas (minReadySeconds), observedGeneration and the ReplicaFailure condition.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory, object_key
from shim.controllers.expectations import Expectations
from shim.controllers.ownership import (
    ControllerRefManager,
    controlled_by,
    controller_of,
    controller_ref,
    index_by_controller,
    owners_selecting,
    recheck_deletion,
    resolve_controller,
    spec_selector,
)
from shim.controllers.podcontrol import PodControl, api_message
from shim.controllers.podutil import (
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    now,
    pods_to_delete,
    ready_condition,
)
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import PODS, REPLICASETS, REPLICATION_CONTROLLERS
from shim.machinery.selectors import SelectorError, label_selector_from_object
from shim.machinery.timefmt import format_time

Obj = dict[str, Any]

BURST_REPLICAS = 500  # kube's BurstReplicas: at most this many creates or deletes per sync
SLOW_START_INITIAL_BATCH = 1  # kube's SlowStartInitialBatchSize
REPLICA_FAILURE = "ReplicaFailure"


@dataclass(frozen=True)
class ReplicatedKind:
    """A kind the replica set logic runs for: its resource, owner-reference apiVersion and kind, the
    controller's component name, and its selector as a metav1.LabelSelector."""

    resource: Resource
    api_version: str
    kind: str
    component: str
    selector_of: Callable[[Obj], Obj | None]


def _label_map_selector(rc: Obj) -> Obj | None:
    """A v1 RC's `spec.selector` is a plain label map (`labels.SelectorFromSet`); an empty one selects nothing
    here (validation refuses it)."""
    labels = rc["spec"].get("selector")
    return {"matchLabels": labels} if labels else None


REPLICA_SET = ReplicatedKind(REPLICASETS, "apps/v1", "ReplicaSet", "replicaset-controller", spec_selector)
REPLICATION_CONTROLLER = ReplicatedKind(
    REPLICATION_CONTROLLERS, "v1", "ReplicationController", "replication-controller", _label_map_selector
)


class ReplicaSetController(Reconciler):
    """Watches replica sets (or another `ReplicatedKind`) and pods; one sync per owner key (`namespace/name`)."""

    def __init__(
        self, client: ApiClient, informers: SharedInformerFactory | None = None, kind: ReplicatedKind = REPLICA_SET
    ) -> None:
        super().__init__(client, kind.component, informers)
        self.kind = kind
        self.expectations = Expectations()
        self.pod_control = PodControl(client, self.events)
        self.replicasets = self.watch(kind.resource, self._on_replicaset)
        self.pods = self.watch(PODS, self._on_pod)
        index_by_controller(self.replicasets)
        index_by_controller(self.pods)

    async def sync(self, key: str) -> None:
        """One reconcile of one replica set: claim pods, create or delete the difference, write status."""
        namespace = key.split("/", 1)[0]
        rs = self.replicasets.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = label_selector_from_object(self.kind.selector_of(rs))
        except SelectorError as exc:
            self.log.warning("replica set %s has an invalid selector: %s", key, exc)
            return
        active = [pod for pod in self.pods.in_namespace(namespace) if is_pod_active(pod)]
        claimer = ControllerRefManager(
            self.client,
            PODS,
            rs,
            controller_ref(rs, self.kind.api_version, self.kind.kind),
            selector,
            recheck_deletion(self.client, self.kind.resource, rs),
        )
        pods = await claimer.claim(active)
        failure: ApiException | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self._manage_replicas(key, rs, pods)
            except ApiException as exc:
                failure = exc
        updated = await self._update_status(rs, calculate_status(rs, pods, failure))
        if failure is not None:
            raise failure
        spec, status = updated["spec"], updated.get("status") or {}
        min_ready, replicas = spec.get("minReadySeconds", 0), spec.get("replicas", 1)
        if min_ready > 0 and status.get("readyReplicas", 0) == replicas != status.get("availableReplicas", 0):
            self.queue.add_after(key, min_ready)  # ready pods become available without any event

    # -- creating and deleting pods ----------------------------------------------------------------------------

    async def _manage_replicas(self, key: str, rs: Obj, pods: list[Obj]) -> None:
        diff = len(pods) - rs["spec"].get("replicas", 1)
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            ref = controller_ref(rs, self.kind.api_version, self.kind.kind)
            pod = pod_from_template(rs["spec"].get("template") or {}, rs["metadata"]["name"], ref)
            created, error = await slow_start_batch(
                count, SLOW_START_INITIAL_BATCH, lambda: self.pod_control.create(rs, pod)
            )
            for _ in range(count - created):  # never coming: stop waiting for them
                self.expectations.creation_observed(key)
            if error is not None:
                raise error
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = pods_to_delete(pods, self._related_pods(rs), count, now())
            self.expectations.expect_deletions(key, [object_key(pod) for pod in victims])
            missed, failure = await self.pod_control.delete_all(rs, victims)
            for pod in missed:
                self.expectations.deletion_observed(key, object_key(pod))
            if failure is not None:
                raise failure

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Pods of this replica set and of its siblings (same controlling deployment): scaling down prefers
        pods sharing a node with many of them (kube's getIndirectlyRelatedPods)."""
        owner = controller_of(rs)
        owners = {rs["metadata"]["uid"]}
        if owner is not None:
            owners |= {sibling["metadata"]["uid"] for sibling in controlled_by(self.replicasets, owner.get("uid", ""))}
        return [pod for uid in owners for pod in controlled_by(self.pods, uid)]

    # -- status ------------------------------------------------------------------------------------------------

    async def _update_status(self, rs: Obj, status: Obj) -> Obj:
        """Write `status` unless it (and observedGeneration) is already current; one retry on a stale copy."""
        generation = rs["metadata"].get("generation", 0)
        current = rs.get("status") or {}
        if _same_status(current, status) and current.get("observedGeneration", 0) == generation:
            return rs
        status["observedGeneration"] = generation
        namespace = rs["metadata"]["namespace"]
        body = copy.copy(rs)
        body["status"] = status
        try:
            updated = await self.client.replace(self.kind.resource, body, namespace, "status")
        except ApiException as exc:
            if exc.status != 409:
                raise
            fresh = await self.client.get(self.kind.resource, rs["metadata"]["name"], namespace)
            fresh["status"] = status
            updated = await self.client.replace(self.kind.resource, fresh, namespace, "status")
        # the next sync may start before the watch brings this write back: let it see it already
        self.replicasets.observe(updated)
        return updated

    # -- informer events ---------------------------------------------------------------------------------------

    async def _on_replicaset(self, event: str, rs: Obj, old: Obj | None) -> None:
        key = object_key(rs)
        if event == "DELETED":
            self.expectations.forget(key)
        self.queue.add(key)

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            self._pod_gone(pod)
            return
        if pod["metadata"].get("deletionTimestamp"):
            # a terminating pod no longer counts: that is when kube observes the deletion
            self._pod_gone(pod)
            if old is not None and _labels(old) != _labels(pod):
                self._pod_gone(old)
            return
        ref = controller_of(pod)
        if old is None:
            if ref is not None:
                rs = self._resolve(pod, ref)
                if rs is not None:
                    self.expectations.creation_observed(object_key(rs))
                    self.queue.add(object_key(rs))
                return
            self._enqueue_matching(pod)  # an orphan: whoever selects it may adopt it
            return
        old_ref = controller_of(old)
        ref_changed = (old_ref or {}).get("uid") != (ref or {}).get("uid")
        if ref_changed and old_ref is not None and (rs := self._resolve(old, old_ref)) is not None:
            self.queue.add(object_key(rs))
        if ref is not None:
            rs = self._resolve(pod, ref)
            if rs is None or not (ref_changed or _replica_facts(old) != _replica_facts(pod)):
                return  # e.g. its binding: nothing the replica set counts changed
            self.queue.add(object_key(rs))
            min_ready = rs["spec"].get("minReadySeconds", 0)
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(pod):
                self.queue.add_after(object_key(rs), min_ready + 1)  # check availability once it can hold
            return
        if ref_changed or _labels(old) != _labels(pod):
            self._enqueue_matching(pod)

    def _pod_gone(self, pod: Obj) -> None:
        ref = controller_of(pod)
        if ref is None:
            return
        rs = self._resolve(pod, ref)
        if rs is not None:
            self.expectations.deletion_observed(object_key(rs), object_key(pod))
            self.queue.add(object_key(rs))

    def _resolve(self, pod: Obj, ref: Obj) -> Obj | None:
        return resolve_controller(self.replicasets, pod, ref, self.kind.kind)

    def _enqueue_matching(self, pod: Obj) -> None:
        for rs in owners_selecting(self.replicasets, pod, self.kind.selector_of):
            self.queue.add(object_key(rs))


def pod_from_template(template: Obj, owner_name: str, owner_ref: Obj) -> Obj:
    """kube's GetPodFromTemplate: the template's labels, annotations, finalizers and spec, named after the owner
    with a random suffix, controlled by `owner_ref`."""
    template_meta = template.get("metadata") or {}
    meta: Obj = {
        # kube uses "<owner>-" unless that is no longer a valid name prefix
        "generateName": f"{owner_name}-" if len(owner_name) < 253 else owner_name,
        "ownerReferences": [owner_ref],
    }
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            meta[field] = copy.deepcopy(template_meta[field])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


def calculate_status(rs: Obj, pods: list[Obj], failure: ApiException | None) -> Obj:
    """The replica set's new status from its active pods (kube's calculateStatus); zero counts are omitted."""
    template_labels = (((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}).items()
    min_ready = rs["spec"].get("minReadySeconds", 0)
    at = now()
    labeled = ready = available = 0
    for pod in pods:
        if template_labels <= _labels(pod).items():
            labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if min_ready == 0 or is_pod_available(pod, min_ready, at):
                available += 1
    previous = rs.get("status") or {}
    conditions = [dict(c) for c in previous.get("conditions") or ()]
    has_failure = any(c.get("type") == REPLICA_FAILURE for c in conditions)
    if failure is not None and not has_failure:
        diff = len(pods) - rs["spec"].get("replicas", 1)
        conditions.append(
            {
                "type": REPLICA_FAILURE,
                "status": "True",
                "lastTransitionTime": format_time(at),
                "reason": "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else "",
                "message": api_message(failure),
            }
        )
    elif failure is None and has_failure:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    status: Obj = {"replicas": len(pods)}
    for field, value in (("fullyLabeledReplicas", labeled), ("readyReplicas", ready), ("availableReplicas", available)):
        if value:
            status[field] = value
    if previous.get("observedGeneration"):
        status["observedGeneration"] = previous["observedGeneration"]
    if conditions:
        status["conditions"] = conditions
    return status


async def slow_start_batch(
    count: int, initial: int, action: Callable[[], Awaitable[object]]
) -> tuple[int, Exception | None]:
    """Run `action` `count` times in growing concurrent batches (initial, 2x, 4x, ...), stopping after the first
    batch with a failure: a quota or admission error costs one call, not hundreds. (successes, first error)."""
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(action() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(failures)
        if failures:
            first = failures[0]
            if not isinstance(first, Exception):
                raise first  # cancellation
            return successes, first
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def _same_status(current: Obj, new: Obj) -> bool:
    fields = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
    return all(current.get(f, 0) == new.get(f, 0) for f in fields) and (current.get("conditions") or []) == (
        new.get("conditions") or []
    )


def _replica_facts(pod: Obj) -> tuple[Any, ...]:
    """What a replica set's claim and status read from one of its pods."""
    ready = ready_condition(pod) or {}
    phase = (pod.get("status") or {}).get("phase")
    return pod["metadata"].get("labels"), phase, ready.get("status"), ready.get("lastTransitionTime")


def _labels(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}
