"""DaemonSet controller: one daemon pod on every node that should run it, like kube-controller-manager's.

Follows `pkg/controller/daemon/daemon_controller.go` and `update.go`: nodes are judged by the template's
nodeName, nodeSelector, required node affinity and taints (with the tolerations kube adds to daemon pods);
missing pods are created pinned to their node by a required node affinity on `metadata.name` and bound by the
scheduler; pods on nodes that should not run them, failed pods (with back-off) and duplicates are deleted.
Templates are recorded as ControllerRevisions (`shim.controllers.history`); RollingUpdate replaces old pods
within maxUnavailable (or surges up to maxSurge), OnDelete waits for the user. Pods on deleted nodes are left
to the pod GC, as in kube.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformer, SharedInformerFactory, object_key
from shim.controllers.daemonutil import (
    by_age_and_phase,
    daemon_pod_template,
    is_pod_updated,
    pin_to_node,
    should_run,
    target_node,
    template_generation,
    updated_and_old,
)
from shim.controllers.deploymentutil import scaled_value
from shim.controllers.expectations import Expectations
from shim.controllers.history import REVISION_HASH_LABEL, construct_history, truncate
from shim.controllers.ownership import (
    claim_in_namespace,
    controller_of,
    controller_ref,
    owners_selecting,
    resolve_controller,
)
from shim.controllers.podcontrol import PodControl
from shim.controllers.podutil import is_pod_available, is_pod_ready, now
from shim.controllers.reconciler import Reconciler
from shim.controllers.replicaset import pod_from_template, slow_start_batch
from shim.machinery.resources import CONTROLLER_REVISIONS, DAEMONSETS, NODES, PODS
from shim.machinery.selectors import LabelSelector, SelectorError, label_selector_from_object

Obj = dict[str, Any]

BURST_REPLICAS = 250  # kube's DaemonSet BurstReplicas: at most this many creates or deletes per sync
FAILED_POD_BACKOFF = (1.0, 900.0)  # kube's failedPodsBackoff: 1 s doubling up to 15 min per (daemon set, node)
_MAX_BACKOFF_ENTRIES = 10_000


class DaemonSetController(Reconciler):
    """Watches daemon sets, their pods and revisions, and nodes; one sync per daemon set (`namespace/name`)."""

    workers = 2  # kube's --concurrent-daemonset-syncs default

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "daemonset-controller", informers)
        self.expectations = Expectations()
        self.pod_control = PodControl(client, self.events)
        self.daemonsets = self.watch(DAEMONSETS, self._on_daemonset)
        self.pods = self.watch(PODS, self._on_pod)
        self.nodes = self.watch(NODES, self._on_node)
        self.revisions = self.watch(CONTROLLER_REVISIONS, self._on_revision)
        # (daemon set key, node) -> (delay, when it was last set): failed pods are replaced with back-off
        self._failed_backoff: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    async def sync(self, key: str) -> None:
        """One reconcile of one daemon set: history, pods per node, the rolling update, old revisions, status."""
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        try:
            selector = label_selector_from_object(ds["spec"].get("selector"))
        except SelectorError as exc:
            self.log.warning("daemon set %s has an invalid selector: %s", key, exc)
            return
        if selector.empty:
            message = "This daemon set is selecting all pods. A non-empty selector is required."
            self.events.emit(ds, "Warning", "SelectingAll", message)
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        nodes = self.nodes.list()
        current, old = await self._construct_history(ds, selector)
        hash_ = (current["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, "")
        if not self.expectations.satisfied(key):
            # only the status: this generation was not acted on yet
            await self._update_status(ds, nodes, hash_, selector, observed=False)
            return
        failure: ApiException | None = None
        try:
            await self._manage(key, ds, nodes, hash_, selector)
            if self.expectations.satisfied(key) and _is_rolling_update(ds):
                await self._rolling_update(key, ds, nodes, hash_, selector)
            await self._cleanup_history(ds, old, selector)
        except ApiException as exc:
            failure = exc
        await self._update_status(ds, nodes, hash_, selector, observed=True)
        if failure is not None:
            raise failure

    # -- pods per node ---------------------------------------------------------------------------------------

    async def _claim(self, resource: Resource, cache: SharedInformer, ds: Obj, selector: LabelSelector) -> list[Obj]:
        """The objects of `resource` in the daemon set's namespace it controls, after adopting and releasing."""
        return await claim_in_namespace(self.client, resource, cache, ds, DAEMONSETS, "DaemonSet", selector)

    async def _node_pods(
        self, ds: Obj, selector: LabelSelector, include_finished_deleted: bool = False
    ) -> dict[str, list[Obj]]:
        """getNodesToDaemonPods: the claimed pods by the node they run on (or are pinned to)."""
        pods = await self._claim(PODS, self.pods, ds, selector)
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if not include_finished_deleted and finished and pod["metadata"].get("deletionTimestamp"):
                continue  # the kubelet or the pod GC finishes it: nothing left to do here
            by_node.setdefault(target_node(pod), []).append(pod)
        return by_node

    async def _manage(self, key: str, ds: Obj, nodes: list[Obj], hash_: str, selector: LabelSelector) -> None:
        node_pods = await self._node_pods(ds, selector)
        to_create: list[str] = []
        to_delete: list[Obj] = []
        for node in nodes:
            name = node["metadata"]["name"]
            create, delete = self._pods_should_be_on_node(key, ds, node, node_pods.get(name, []), hash_)
            if create:
                to_create.append(name)
            to_delete.extend(delete)
        # unscheduled pods pinned to nodes that no longer exist never run
        names = {node["metadata"]["name"] for node in nodes}
        for node_name, pods in node_pods.items():
            if node_name not in names:
                to_delete.extend(p for p in pods if not (p.get("spec") or {}).get("nodeName"))
        await self._sync_nodes(key, ds, to_delete, to_create, hash_)

    def _pods_should_be_on_node(
        self, key: str, ds: Obj, node: Obj, pods: list[Obj], hash_: str
    ) -> tuple[bool, list[Obj]]:
        """podsShouldBeOnNode: (create a pod here, the pods here to delete)."""
        run, keep_running = should_run(node, ds)
        node_name = node["metadata"]["name"]
        if run and not pods:
            return True, []
        if not keep_running:
            return False, [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        to_delete: list[Obj] = []
        running: list[Obj] = []
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Failed":
                # the kubelet may keep rejecting it: replace it with back-off, not in a hot loop
                delay = self._failed_pod_delay(key, node_name)
                if delay is not None:
                    self.queue.add_after(key, delay)
                    continue
                meta = pod["metadata"]
                message = (
                    f"Found failed daemon pod {meta['namespace']}/{meta['name']} on node {node_name}, "
                    "will try to kill it"
                )
                self.events.emit(ds, "Warning", "FailedDaemonPod", message)
                to_delete.append(pod)
            elif phase == "Succeeded":
                to_delete.append(pod)
            else:
                running.append(pod)
        if len(running) <= 1:
            return False, to_delete
        running.sort(key=by_age_and_phase)
        if not _allows_surge(ds):
            return False, to_delete + running[1:]  # keep the oldest
        # surging: an old and a new pod may share the node until the new one is available
        oldest_new = oldest_old = None
        for pod in running:
            labels = pod["metadata"].get("labels") or {}
            if labels.get(REVISION_HASH_LABEL) == hash_ and oldest_new is None:
                oldest_new = pod
            elif labels.get(REVISION_HASH_LABEL) != hash_ and oldest_old is None:
                oldest_old = pod
            else:
                to_delete.append(pod)
        min_ready = ds["spec"].get("minReadySeconds", 0)
        # the old pod goes once it is not ready anyway, or the new one can stand in
        if (
            oldest_new is not None
            and oldest_old is not None
            and (not is_pod_ready(oldest_old) or is_pod_available(oldest_new, min_ready, now()))
        ):
            to_delete.append(oldest_old)
        return False, to_delete

    def _failed_pod_delay(self, key: str, node: str) -> float | None:
        """Seconds left in the back-off of replacing a failed pod on `node`, or None (and the back-off grows)."""
        at = time.monotonic()
        initial, maximum = FAILED_POD_BACKOFF
        entry = self._failed_backoff.get((key, node))
        if entry is not None and at - entry[1] < entry[0]:
            return entry[0] - (at - entry[1])
        delay = initial if entry is None or at - entry[1] > 2 * maximum else min(2 * entry[0], maximum)
        self._failed_backoff[(key, node)] = (delay, at)
        self._failed_backoff.move_to_end((key, node))
        while len(self._failed_backoff) > _MAX_BACKOFF_ENTRIES:
            self._failed_backoff.popitem(last=False)
        return None

    async def _sync_nodes(self, key: str, ds: Obj, to_delete: list[Obj], nodes: list[str], hash_: str) -> None:
        """Create a daemon pod on each of `nodes` and delete `to_delete`, at most BURST_REPLICAS of each."""
        nodes, to_delete = nodes[:BURST_REPLICAS], to_delete[:BURST_REPLICAS]
        self.expectations.expect(key, len(nodes), [object_key(pod) for pod in to_delete])
        template = daemon_pod_template(ds, hash_)
        ref = controller_ref(ds, "apps/v1", "DaemonSet")
        pending = iter(nodes)

        async def create_next() -> None:
            pod = pod_from_template(template, ds["metadata"]["name"], ref)
            pin_to_node(pod["spec"], next(pending))
            await self.pod_control.create(ds, pod)

        created, error = await slow_start_batch(len(nodes), 1, create_next)
        for _ in range(len(nodes) - created):  # never coming: stop waiting for them
            self.expectations.creation_observed(key)
        missed, failure = await self.pod_control.delete_all(ds, to_delete)
        for pod in missed:
            self.expectations.deletion_observed(key, object_key(pod))
        for problem in (error, failure):
            if problem is not None:
                raise problem

    # -- rolling update ----------------------------------------------------------------------------------------

    async def _rolling_update(self, key: str, ds: Obj, nodes: list[Obj], hash_: str, selector: LabelSelector) -> None:
        """kube's rollingUpdate: without surge, delete old pods within maxUnavailable (manage recreates them);
        with surge, create new pods beside available old ones up to maxSurge, deleting the old once the new
        are available."""
        node_pods = await self._node_pods(ds, selector)
        by_name = {node["metadata"]["name"]: node for node in nodes}
        desired = 0
        for name, node in by_name.items():
            if should_run(node, ds)[0]:
                desired += 1
                node_pods.setdefault(name, [])
        rolling = ds["spec"]["updateStrategy"].get("rollingUpdate") or {}
        max_surge = scaled_value(rolling.get("maxSurge"), desired, True)
        max_unavailable = scaled_value(rolling.get("maxUnavailable"), desired, True)
        if desired > 0 and max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1  # an impossible configuration: accept unavailability, as kube does
        generation = template_generation(ds)
        min_ready, at = ds["spec"].get("minReadySeconds", 0), now()

        def available(pod: Obj) -> bool:
            return is_pod_available(pod, min_ready, at)

        if max_surge == 0:
            unavailable = 0
            replace: list[Obj] = []
            candidates: list[Obj] = []
            for pods in node_pods.values():
                new, old, ok = updated_and_old(pods, hash_, generation)
                if not ok or (new is None) == (old is None):
                    unavailable += 1  # manage sorts this node out; meanwhile it counts as unavailable
                elif new is not None:
                    unavailable += 0 if available(new) else 1
                elif old is not None and not available(old):
                    replace.append(old)
                elif old is not None and unavailable < max_unavailable:
                    candidates.append(old)
            room = min(max(max_unavailable - unavailable, 0), len(candidates))
            await self._sync_nodes(key, ds, replace + candidates[:room], [], hash_)
            return
        old_to_delete: list[Obj] = []
        allowed_nodes: list[str] = []
        candidate_nodes: list[str] = []
        surge = 0
        for name, pods in node_pods.items():
            new, old, ok = updated_and_old(pods, hash_, generation)
            if not ok:
                surge += 1
                continue
            target = by_name.get(name)
            if target is None or not should_run(target, ds)[0]:
                old_to_delete.extend(p for p in (old, new) if p is not None)
                continue
            if old is None:
                continue
            if new is None:
                if not available(old):
                    allowed_nodes.append(name)
                elif surge < max_surge:
                    candidate_nodes.append(name)
            elif not available(new):
                surge += 1
            else:
                old_to_delete.append(old)
        room = min(max(max_surge - surge, 0), len(candidate_nodes))
        await self._sync_nodes(key, ds, old_to_delete, allowed_nodes + candidate_nodes[:room], hash_)

    # -- history -----------------------------------------------------------------------------------------------

    async def _construct_history(self, ds: Obj, selector: LabelSelector) -> tuple[Obj, list[Obj]]:
        """constructHistory: (the revision of the current template, the older ones)."""
        revisions = await self._claim(CONTROLLER_REVISIONS, self.revisions, ds, selector)
        return await construct_history(self.client, ds, DAEMONSETS, "DaemonSet", revisions, self.revisions)

    async def _cleanup_history(self, ds: Obj, old: list[Obj], selector: LabelSelector) -> None:
        limit = ds["spec"].get("revisionHistoryLimit", 10)
        if len(old) <= limit:
            return
        node_pods = await self._node_pods(ds, selector, include_finished_deleted=True)
        live = {
            (pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, "")
            for pods in node_pods.values()
            for pod in pods
        }
        await truncate(self.client, old, limit, live - {""})

    # -- status ------------------------------------------------------------------------------------------------

    async def _update_status(
        self, ds: Obj, nodes: list[Obj], hash_: str, selector: LabelSelector, observed: bool
    ) -> None:
        """updateDaemonSetStatus: node counts from the claimed pods, written when they changed."""
        key = object_key(ds)
        node_pods = await self._node_pods(ds, selector)
        generation = template_generation(ds)
        min_ready, at = ds["spec"].get("minReadySeconds", 0), now()
        desired = current = misscheduled = ready = updated = available = 0
        for node in nodes:
            pods = node_pods.get(node["metadata"]["name"], [])
            if not should_run(node, ds)[0]:
                misscheduled += 1 if pods else 0
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            pod = min(pods, key=by_age_and_phase)
            if is_pod_ready(pod):
                ready += 1
                available += 1 if is_pod_available(pod, min_ready, at) else 0
            updated += 1 if is_pod_updated(pod, hash_, generation) else 0
        counts = {
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
            "numberUnavailable": desired - available,
        }
        await self._store_status(ds, counts, observed)
        if min_ready > 0 and ready != available:
            self.queue.add_after(key, min_ready)  # ready pods become available without any event

    async def _store_status(self, ds: Obj, counts: Obj, observed: bool) -> None:
        """storeDaemonSetStatus: skip an unchanged status; one retry on a stale copy."""
        generation = ds["metadata"].get("generation", 0)
        previous = ds.get("status") or {}
        observed_generation = generation if observed else previous.get("observedGeneration", 0)
        unchanged = all(previous.get(field, 0) == value for field, value in counts.items())
        if unchanged and previous.get("observedGeneration", 0) == observed_generation:
            return
        meta = ds["metadata"]
        body = copy.copy(ds)
        for attempt in range(2):
            status = {key: value for key, value in (body.get("status") or {}).items() if key not in counts}
            status.update({field: value for field, value in counts.items() if value or field in _REQUIRED_COUNTS})
            if observed_generation:
                status["observedGeneration"] = observed_generation
            body["status"] = status
            try:
                updated = await self.client.replace(DAEMONSETS, body, meta["namespace"], "status")
            except ApiException as exc:
                if exc.status != 409 or attempt:
                    raise
                body = await self.client.get(DAEMONSETS, meta["name"], meta["namespace"])
                continue
            self.daemonsets.observe(updated)
            return

    # -- informer events ---------------------------------------------------------------------------------------

    async def _on_daemonset(self, event: str, ds: Obj, old: Obj | None) -> None:
        key = object_key(ds)
        if event == "DELETED":
            self.expectations.forget(key)
            for entry in [e for e in self._failed_backoff if e[0] == key]:
                del self._failed_backoff[entry]
        self.queue.add(key)

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_of(pod)
        ds = resolve_controller(self.daemonsets, pod, ref, "DaemonSet") if ref is not None else None
        if event == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            if ds is not None:
                self.expectations.deletion_observed(object_key(ds), object_key(pod))
                self.queue.add(object_key(ds))
            return
        if old is None and ds is not None:
            self.expectations.creation_observed(object_key(ds))
        if ds is not None:
            self.queue.add(object_key(ds))
        if old is not None:
            old_ref = controller_of(old)
            previous = resolve_controller(self.daemonsets, old, old_ref, "DaemonSet") if old_ref is not None else None
            if previous is not None and previous["metadata"]["uid"] != (ref or {}).get("uid"):
                self.queue.add(object_key(previous))  # released: its old owner counts one pod less
        if ref is None:
            for owner in owners_selecting(self.daemonsets, pod):  # an orphan: whoever selects it may adopt it
                self.queue.add(object_key(owner))
        elif ds is not None and old is not None and not is_pod_ready(old) and is_pod_ready(pod):
            min_ready = ds["spec"].get("minReadySeconds", 0)
            if min_ready > 0:
                self.queue.add_after(object_key(ds), min_ready + 1)  # check availability once it can hold

    async def _on_node(self, event: str, node: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and old is not None and _node_facts(old) == _node_facts(node):
            return  # a heartbeat: nothing a daemon set decides on changed
        for ds in self.daemonsets.list():
            if event != "MODIFIED" or old is None or should_run(old, ds) != should_run(node, ds):
                self.queue.add(object_key(ds))

    async def _on_revision(self, event: str, revision: Obj, old: Obj | None) -> None:
        ref = controller_of(revision)
        if ref is not None:
            ds = resolve_controller(self.daemonsets, revision, ref, "DaemonSet")
            if ds is not None:
                self.queue.add(object_key(ds))
        elif event != "DELETED":
            for owner in owners_selecting(self.daemonsets, revision):
                self.queue.add(object_key(owner))


_REQUIRED_COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")


def _is_rolling_update(ds: Obj) -> bool:
    return (ds["spec"].get("updateStrategy") or {}).get("type") == "RollingUpdate"


def _allows_surge(ds: Obj) -> bool:
    """AllowsSurge: a rolling update whose maxSurge is more than 0 (a percentage of one node rounds up)."""
    if not _is_rolling_update(ds):
        return False
    rolling = ds["spec"]["updateStrategy"].get("rollingUpdate") or {}
    try:
        return scaled_value(rolling.get("maxSurge"), 1, True) > 0
    except ValueError:
        return False


def _node_facts(node: Obj) -> tuple[Any, ...]:
    """What a daemon set decides on: the node's labels, taints and name."""
    return node["metadata"].get("labels"), (node.get("spec") or {}).get("taints"), node["metadata"]["name"]
