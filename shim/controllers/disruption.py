"""The disruption controller (`pkg/controller/disruption`): keeps each PodDisruptionBudget's status — how many
of its pods are healthy, how many must be, and so how many the eviction subresource may still take.

`minAvailable` as a number counts the selected pods; a percentage, and `maxUnavailable`, are taken of the
scale of the pods' controllers (a Deployment's replicas for its ReplicaSets' pods, a ReplicaSet's, and a
StatefulSet's or ReplicationController's through its `scale` subresource). Pods an eviction took
(`status.disruptedPods`) count as gone for two minutes, until their deletion shows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.controllers.deploymentutil import scaled_value
from shim.controllers.ownership import controller_of, resolve_controller
from shim.controllers.podutil import is_pod_ready, now, parse_time
from shim.controllers.reconciler import Reconciler
from shim.machinery.disruption import set_disruption_allowed_condition
from shim.machinery.resources import (
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    REPLICASETS,
    REPLICATION_CONTROLLERS,
    STATEFULSETS,
)
from shim.machinery.selectors import SelectorError, label_selector_from_object
from shim.machinery.timefmt import format_time

Obj = dict[str, Any]

#: how long a pod an eviction took may take to be deleted before it counts again (kube's DeletionTimeout)
DELETION_TIMEOUT = timedelta(minutes=2)
#: controllers found through their `scale` subresource (kube finds any scalable kind through its RESTMapper)
_SCALABLE = {
    ("apps", "StatefulSet"): STATEFULSETS,
    ("", "ReplicationController"): REPLICATION_CONTROLLERS,
}


class NoController(Exception):
    """A selected pod's controller could not be found, so a percentage or maxUnavailable has no denominator."""


class DisruptionController(Reconciler):
    """Keeps every PodDisruptionBudget's status in step with its pods."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "controllermanager", informers)
        self.budgets = self.watch(POD_DISRUPTION_BUDGETS, self._on_budget)
        self.pods = self.watch(PODS, self._on_pod)
        self.replicasets = self.watch(REPLICASETS, _ignore)
        self.deployments = self.watch(DEPLOYMENTS, _ignore)

    async def sync(self, key: str) -> None:
        """trySync: count the budget's pods and write its status when it changed."""
        pdb = self.budgets.get(key)
        if pdb is None:
            return
        pods = self._pods_of(pdb)
        if not pods:
            self.events.emit(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = await self._expected_pods(pdb, pods)
        except NoController as exc:
            message = f"Failed to calculate the number of expected pods: {exc}"
            self.events.emit(pdb, "Warning", "CalculateExpectedPodCountFailed", message)
            await self._fail_safe(pdb, str(exc))
            return
        if unmanaged:
            message = (
                f"Pods selected by this PodDisruptionBudget (selector: {_go_selector(pdb['spec'].get('selector'))}) "
                "were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                "which may result in undefined behavior. To account for these pods please set "
                '".spec.minAvailable" field of the PDB to an integer value.'
            )
            self.events.emit(pdb, "Warning", "UnmanagedPods", message)
        at = now()
        disrupted, recheck = self._disrupted_pods(pdb, pods, at)
        healthy = sum(
            1
            for pod in pods
            if not pod["metadata"].get("deletionTimestamp")
            and pod["metadata"]["name"] not in disrupted
            and is_pod_ready(pod)
        )
        allowed = healthy - desired if expected > 0 else 0
        status: Obj = {"observedGeneration": pdb["metadata"].get("generation", 0)}
        if disrupted:
            status["disruptedPods"] = disrupted
        status |= {
            "disruptionsAllowed": max(allowed, 0),
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": list((pdb.get("status") or {}).get("conditions") or ()),
        }
        set_disruption_allowed_condition(status)
        await self._write_status(pdb, status)
        if recheck is not None:
            self.queue.add_after(key, max((recheck - at).total_seconds(), 0.0))

    def _pods_of(self, pdb: Obj) -> list[Obj]:
        """getPodsForPdb: the namespace's pods the selector matches (no selector matches none)."""
        try:
            selector = label_selector_from_object(pdb["spec"].get("selector"))
        except SelectorError:
            return []
        namespace = pdb["metadata"].get("namespace", "")
        return [pod for pod in self.pods.in_namespace(namespace) if selector.matches(pod["metadata"].get("labels"))]

    async def _expected_pods(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int, list[str]]:
        """getExpectedPodCount: (expected pods, desired healthy, unmanaged pod names)."""
        spec = pdb["spec"]
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None:
            expected, unmanaged = await self._expected_scale(pods)
            return expected, max(expected - _scaled(max_unavailable, expected), 0), unmanaged
        if isinstance(min_available, int):
            return len(pods), min_available, []
        if min_available is not None:
            expected, unmanaged = await self._expected_scale(pods)
            return expected, _scaled(min_available, expected), unmanaged
        return 0, 0, []

    async def _expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        """getExpectedScale: the sum of the scales of the pods' controllers, each counted once."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_of(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = await self._controller_scale(pod, ref)
            if found is None:
                raise NoController(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    async def _controller_scale(self, pod: Obj, ref: Obj) -> tuple[str, int] | None:
        """(uid, scale) of the controller `ref` names: a ReplicaSet's Deployment when it has one."""
        group = ref.get("apiVersion", "").rpartition("/")[0]
        if ref.get("kind") == "ReplicaSet" and group in ("apps", "extensions"):
            rs = resolve_controller(self.replicasets, pod, ref, "ReplicaSet")
            if rs is None:
                return None
            owner = controller_of(rs)
            if owner is None or owner.get("kind") != "Deployment":
                return rs["metadata"]["uid"], rs["spec"].get("replicas", 1)
            deployment = resolve_controller(self.deployments, rs, owner, "Deployment")
            if deployment is None:
                return None
            return deployment["metadata"]["uid"], deployment["spec"].get("replicas", 1)
        resource = _SCALABLE.get((group, ref.get("kind", "")))
        if resource is None:
            return None
        path = resource.path(pod["metadata"].get("namespace"), ref.get("name"), "scale")
        try:
            scale = await self.client.request("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if scale["metadata"].get("uid") != ref.get("uid"):
            return None
        return scale["metadata"]["uid"], (scale.get("spec") or {}).get("replicas", 0)

    def _disrupted_pods(self, pdb: Obj, pods: list[Obj], at: datetime) -> tuple[dict[str, str], datetime | None]:
        """buildDisruptedPodMap: the evicted pods still expected to go, and when the first of them times out."""
        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        recheck: datetime | None = None
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp") or name not in recorded:
                continue
            since = parse_time(recorded[name])
            if since is None:
                continue
            deadline = since + DELETION_TIMEOUT
            if deadline < at:
                namespace, budget = pdb["metadata"].get("namespace"), pdb["metadata"]["name"]
                message = f"Pod was expected by PDB {namespace}/{budget} to be deleted but it wasn't"
                self.events.emit(pod, "Warning", "NotDeleted", message)
                continue
            kept[name] = format_time(since)
            recheck = deadline if recheck is None or deadline < recheck else recheck
        return kept, recheck

    async def _fail_safe(self, pdb: Obj, why: str) -> None:
        """failSafe: a budget whose numbers cannot be worked out allows no disruption."""
        status = dict(pdb.get("status") or {})
        status["disruptionsAllowed"] = 0
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "DisruptionAllowed"]
        conditions.append({
            "type": "DisruptionAllowed",
            "status": "False",
            "observedGeneration": status.get("observedGeneration", 0),
            "lastTransitionTime": format_time(now()),
            "reason": "SyncFailed",
            "message": why,
        })  # fmt: skip
        status["conditions"] = conditions
        await self._write_status(pdb, status)

    async def _write_status(self, pdb: Obj, status: Obj) -> None:
        """UpdateStatus at the cached resourceVersion: an eviction that spent the budget meanwhile makes it a
        conflict, and the retry counts again."""
        if status == pdb.get("status"):
            return
        updated = await self.client.replace(
            POD_DISRUPTION_BUDGETS, {**pdb, "status": status}, pdb["metadata"].get("namespace"), subresource="status"
        )
        self.budgets.observe(updated)

    async def _on_budget(self, event: str, pdb: Obj, old: Obj | None) -> None:
        if event != "DELETED":
            self.queue.add(object_key(pdb))

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        """A pod's change moves the numbers of each budget selecting it (before or after the change)."""
        namespace = pod["metadata"].get("namespace", "")
        labels = [pod["metadata"].get("labels")] + ([old["metadata"].get("labels")] if old else [])
        for pdb in self.budgets.in_namespace(namespace):
            try:
                selector = label_selector_from_object(pdb["spec"].get("selector"))
            except SelectorError:
                continue
            if any(selector.matches(value) for value in labels):
                self.queue.add(object_key(pdb))


def _go_selector(selector: Obj | None) -> str:
    """A *metav1.LabelSelector as Go's %v prints it (its generated String method)."""
    if selector is None:
        return "nil"
    labels = "".join(f"{key}: {value}," for key, value in sorted((selector.get("matchLabels") or {}).items()))
    expressions = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or ())}],}},"
        for e in selector.get("matchExpressions") or ()
    )
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )


def _scaled(value: int | str, total: int) -> int:
    """A validated int-or-percent of `total`, rounded up as kube does for budgets (a malformed one is 0)."""
    try:
        return scaled_value(value, total, True)
    except ValueError:
        return 0


async def _ignore(event: str, obj: Obj, old: Obj | None) -> None:
    """The caches of controllers are read, not reacted to (a scale change shows through the pods)."""
