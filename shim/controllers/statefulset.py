"""StatefulSet controller: pods with a stable name, network identity and storage, like kube-controller-manager's.

Follows `pkg/controller/statefulset` (stateful_set_control.go, stateful_set_utils.go, stateful_pod_control.go):
pods are `<set>-<ordinal>` with `hostname` = their name and `subdomain` = `serviceName`; each claim template
becomes a PersistentVolumeClaim `<template>-<set>-<ordinal>`, created before its pod and kept when the pod goes
(unless persistentVolumeClaimRetentionPolicy says Delete, which hands the claim to the garbage collector through
an owner reference). OrderedReady creates pods one at a time in ordinal order, each after the previous is
Running and Ready, and removes them in reverse; Parallel does not wait. Templates are recorded as
ControllerRevisions (`shim.controllers.history`); RollingUpdate replaces pods from the highest ordinal down to
the partition, one at a time, each once the others are healthy; OnDelete waits for the user.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformer, SharedInformerFactory, object_key
from shim.controllers.apierrors import missing_ok
from shim.controllers.expectations import Expectations
from shim.controllers.history import REVISION_HASH_LABEL, construct_history, truncate
from shim.controllers.ownership import (
    claim_in_namespace,
    controller_of,
    controller_ref,
    owners_selecting,
    resolve_controller,
)
from shim.controllers.podcontrol import PodControl, PodEventWording, api_message
from shim.controllers.podutil import is_pod_available, is_pod_ready, now
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFULSETS
from shim.machinery.selectors import LabelSelector, SelectorError, label_selector_from_object

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


class StatefulSetController(Reconciler):
    """Watches stateful sets, their pods and revisions; one sync per stateful set (`namespace/name`)."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "statefulset-controller", informers)
        self.expectations = Expectations()
        self.pod_control = PodControl(client, self.events, StatefulPodWording())
        self.sets = self.watch(STATEFULSETS, self._on_set)
        self.pods = self.watch(PODS, self._on_pod)
        self.revisions = self.watch(CONTROLLER_REVISIONS, self._on_revision)

    async def sync(self, key: str) -> None:
        """One reconcile of one stateful set: history, pods by ordinal, the rolling update, status."""
        sts = self.sets.get(key)
        if sts is None:
            self.expectations.forget(key)
            return
        try:
            selector = label_selector_from_object(sts["spec"].get("selector"))
        except SelectorError as exc:
            self.log.warning("stateful set %s has an invalid selector: %s", key, exc)
            return
        if selector.empty or sts["metadata"].get("deletionTimestamp"):
            return
        update, old = await self._construct_history(sts, selector)
        current = _current_revision(sts, update, old)
        pods = await self._claim(PODS, self.pods, sts, selector)
        failure: ApiException | None = None
        if self.expectations.satisfied(key):
            try:
                await self._update_pods(key, sts, pods, current, update)
                await self._cleanup_history(sts, old, pods, current, update)
            except ApiException as exc:
                failure = exc
        await self._update_status(sts, pods, current, update)
        if failure is not None:
            raise failure

    async def _claim(self, resource: Resource, cache: SharedInformer, sts: Obj, selector: LabelSelector) -> list[Obj]:
        """The objects of `resource` in the set's namespace it controls, after adopting and releasing."""
        return await claim_in_namespace(self.client, resource, cache, sts, STATEFULSETS, "StatefulSet", selector)

    # -- pods --------------------------------------------------------------------------------------------------

    async def _update_pods(self, key: str, sts: Obj, pods: list[Obj], current: Obj, update: Obj) -> None:
        """updateStatefulSet: create missing ordinals, replace failed pods, remove condemned ones, then roll."""
        spec = sts["spec"]
        name = sts["metadata"]["name"]
        start = (spec.get("ordinals") or {}).get("start", 0)
        replicas = spec.get("replicas", 1)
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        by_ordinal: dict[int, Obj] = {}
        for claimed in pods:
            index = pod_ordinal(name, claimed)
            if index is not None:
                by_ordinal[index] = claimed
        wanted = range(start, start + replicas)
        condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
        for ordinal in wanted:
            pod = by_ordinal.get(ordinal)
            if pod is not None and (pod.get("status") or {}).get("phase") == "Failed":
                if not pod["metadata"].get("deletionTimestamp"):
                    self.expectations.expect(key, 0, [object_key(pod)])
                    await self.pod_control.delete(sts, pod)
                if ordered:
                    return
                continue
            if pod is None:
                revision = current if _keeps_current(sts, ordinal - start) else update
                await self._create_pod(key, sts, ordinal, revision)
                if ordered:
                    return  # the next ordinal waits for this one to be Running and Ready
                continue
            if ordered and not (_healthy(pod) and is_pod_available(pod, spec.get("minReadySeconds", 0), now())):
                return  # kube's isRunningAndAvailable: the next ordinal waits minReadySeconds too
        for ordinal in condemned:
            pod = by_ordinal[ordinal]
            if pod["metadata"].get("deletionTimestamp"):
                if ordered:
                    return
                continue
            if ordered and any(not _healthy(p) for o, p in by_ordinal.items() if o != ordinal):
                return
            await self._condemn(key, sts, pod)
            if ordered:
                return
        if (spec.get("updateStrategy") or {}).get("type") != "RollingUpdate":
            return
        partition = ((spec["updateStrategy"].get("rollingUpdate") or {}).get("partition")) or 0
        update_hash = _hash_of(update)
        for ordinal in reversed(wanted):
            if ordinal - start < partition:
                return
            pod = by_ordinal.get(ordinal)
            if pod is None or not _healthy(pod):
                return  # wait until the pod just replaced is Running and Ready
            if (pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) != update_hash:
                self.expectations.expect(key, 0, [object_key(pod)])
                await self.pod_control.delete(sts, pod)
                return

    async def _create_pod(self, key: str, sts: Obj, ordinal: int, revision: Obj) -> None:
        """The pod of `ordinal` from `revision`'s template, after the claims it mounts."""
        pod = new_pod(sts, ordinal, revision)
        await self._create_claims(sts, pod)
        self.expectations.expect(key, 1, [])
        try:
            await self.pod_control.create(sts, pod)
        except ApiException:
            self.expectations.creation_observed(key)
            raise

    async def _create_claims(self, sts: Obj, pod: Obj) -> None:
        """createPersistentVolumeClaims: each claim of the pod that does not exist yet (kept when it does)."""
        namespace = sts["metadata"]["namespace"]
        for claim in pod_claims(sts, pod["metadata"]["name"]):
            try:
                await self.client.create(PERSISTENT_VOLUME_CLAIMS, claim, namespace)
            except ApiException as exc:
                if exc.status == 409:
                    continue
                message = f"create Claim {claim['metadata']['name']} for Pod {pod['metadata']['name']} in "
                message += f"StatefulSet {sts['metadata']['name']} failed error: {api_message(exc)}"
                self.events.emit(sts, "Warning", "FailedCreate", message)
                raise
            message = f"create Claim {claim['metadata']['name']} Pod {pod['metadata']['name']} in "
            message += f"StatefulSet {sts['metadata']['name']} success"
            self.events.emit(sts, "Normal", "SuccessfulCreate", message)

    async def _condemn(self, key: str, sts: Obj, pod: Obj) -> None:
        """Delete a pod beyond the replicas; with whenScaled: Delete its claims go with it (owned by the pod)."""
        retention = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        if retention.get("whenScaled") == "Delete":
            ref = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            }
            for claim in pod_claims(sts, pod["metadata"]["name"]):
                meta = claim["metadata"]
                with missing_ok():
                    patch = {"metadata": {"ownerReferences": [ref]}}
                    await self.client.patch(PERSISTENT_VOLUME_CLAIMS, meta["name"], patch, meta["namespace"])
        self.expectations.expect(key, 0, [object_key(pod)])
        await self.pod_control.delete(sts, pod)

    # -- history -----------------------------------------------------------------------------------------------

    async def _construct_history(self, sts: Obj, selector: LabelSelector) -> tuple[Obj, list[Obj]]:
        """(the revision of the current template, the older ones)."""
        revisions = await self._claim(CONTROLLER_REVISIONS, self.revisions, sts, selector)
        return await construct_history(self.client, sts, STATEFULSETS, "StatefulSet", revisions, self.revisions)

    async def _cleanup_history(self, sts: Obj, old: list[Obj], pods: list[Obj], current: Obj, update: Obj) -> None:
        """Old revisions beyond revisionHistoryLimit go, except those a pod or the status still names."""
        limit = sts["spec"].get("revisionHistoryLimit", 10)
        if len(old) <= limit:
            return
        live = {(p["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, "") for p in pods}
        live |= {_hash_of(current), _hash_of(update)}
        # truncate spares revisions by their hash label; stateful pods name their revision
        spared = {(r["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL, "") for r in old if _hash_of(r) in live}
        await truncate(self.client, old, limit, spared - {""})

    # -- status ------------------------------------------------------------------------------------------------

    async def _update_status(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj) -> None:
        """The counts kube's updateStatefulSetStatus writes; the rollout completes when every pod is updated
        and ready."""
        min_ready, at = sts["spec"].get("minReadySeconds", 0), now()
        current_hash, update_hash = _hash_of(current), _hash_of(update)
        counts = dict.fromkeys(("replicas", "readyReplicas", "availableReplicas", "currentReplicas"), 0)
        counts["updatedReplicas"] = 0
        for pod in pods:
            if not (pod.get("status") or {}).get("phase"):
                continue
            counts["replicas"] += 1
            if is_pod_ready(pod) and (pod.get("status") or {}).get("phase") == "Running":
                counts["readyReplicas"] += 1
                counts["availableReplicas"] += 1 if is_pod_available(pod, min_ready, at) else 0
            if pod["metadata"].get("deletionTimestamp"):
                continue
            revision_hash = (pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL)
            counts["currentReplicas"] += 1 if revision_hash == current_hash else 0
            counts["updatedReplicas"] += 1 if revision_hash == update_hash else 0
        current_name = current["metadata"]["name"]
        rolling = (sts["spec"].get("updateStrategy") or {}).get("type") == "RollingUpdate"
        if rolling and counts["updatedReplicas"] == counts["replicas"] == counts["readyReplicas"]:
            counts["currentReplicas"] = counts["updatedReplicas"]
            current_name = update["metadata"]["name"]
        previous = sts.get("status") or {}
        status = {k: v for k, v in previous.items() if k not in counts or k == "collisionCount"}
        status.update({k: v for k, v in counts.items() if v or k in ("replicas", "availableReplicas")})
        status["observedGeneration"] = sts["metadata"].get("generation", 0)
        status["currentRevision"] = current_name
        status["updateRevision"] = update["metadata"]["name"]
        if min_ready > 0 and counts["readyReplicas"] != counts["availableReplicas"]:
            self.queue.add_after(object_key(sts), min_ready)  # ready pods become available without any event
        if status == previous:
            return
        body = copy.copy(sts)
        body["status"] = status
        updated = await self.client.replace(STATEFULSETS, body, sts["metadata"]["namespace"], "status")
        self.sets.observe(updated)

    # -- informer events ---------------------------------------------------------------------------------------

    async def _on_set(self, event: str, sts: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            self.expectations.forget(object_key(sts))
        self.queue.add(object_key(sts))

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_of(pod)
        sts = resolve_controller(self.sets, pod, ref, "StatefulSet") if ref is not None else None
        if sts is None:
            if ref is None and event != "DELETED":
                for owner in owners_selecting(self.sets, pod):  # an orphan: whoever selects it may adopt it
                    self.queue.add(object_key(owner))
            return
        key = object_key(sts)
        if event == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(key, object_key(pod))
        elif old is None:
            self.expectations.creation_observed(key)
        self.queue.add(key)

    async def _on_revision(self, event: str, revision: Obj, old: Obj | None) -> None:
        ref = controller_of(revision)
        if ref is not None:
            sts = resolve_controller(self.sets, revision, ref, "StatefulSet")
            if sts is not None:
                self.queue.add(object_key(sts))


class StatefulPodWording(PodEventWording):
    """StatefulPodControl's recordPodEvent: "create Pod web-0 in StatefulSet web successful"."""

    def succeeded(self, verb: str, owner: Obj, pod_name: str) -> str:
        return f"{verb} Pod {pod_name} in StatefulSet {owner['metadata']['name']} successful"

    def failed(self, verb: str, owner: Obj, pod_name: str, message: str) -> str:
        return f"{verb} Pod {pod_name} in StatefulSet {owner['metadata']['name']} failed error: {message}"


def pod_ordinal(set_name: str, pod: Obj) -> int | None:
    """The ordinal in a pod's name `<set>-<ordinal>` (None for a pod of another name)."""
    match = re.fullmatch(re.escape(set_name) + r"-(0|[1-9][0-9]*)", pod["metadata"].get("name", ""))
    return int(match.group(1)) if match else None


def claim_name(template_name: str, pod_name: str) -> str:
    """getPersistentVolumeClaimName: `<template>-<set>-<ordinal>`, i.e. `<template>-<pod name>`."""
    return f"{template_name}-{pod_name}"


def pod_claims(sts: Obj, pod_name: str) -> list[Obj]:
    """getPersistentVolumeClaims: the claims of the pod named `pod_name`, labelled with the set's matchLabels and
    owned by the set when whenDeleted is Delete."""
    meta = sts["metadata"]
    labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    retention = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    claims = []
    for template in sts["spec"].get("volumeClaimTemplates") or ():
        template_meta = template.get("metadata") or {}
        claim_meta: Obj = {
            "name": claim_name(template_meta.get("name", ""), pod_name),
            "namespace": meta["namespace"],
            "labels": {**(template_meta.get("labels") or {}), **labels},
        }
        if template_meta.get("annotations"):
            claim_meta["annotations"] = dict(template_meta["annotations"])
        if retention.get("whenDeleted") == "Delete":
            claim_meta["ownerReferences"] = [controller_ref(sts, "apps/v1", "StatefulSet")]
        claims.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": claim_meta,
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
        )
    return claims


def new_pod(sts: Obj, ordinal: int, revision: Obj) -> Obj:
    """newVersionedStatefulSetPod: the template of `revision` named `<set>-<ordinal>`, with its identity labels,
    hostname and subdomain, and its claim templates mounted as the pod's claims."""
    set_name = sts["metadata"]["name"]
    name = f"{set_name}-{ordinal}"
    template = _revision_template(revision)
    template_meta = template.get("metadata") or {}
    labels = dict(template_meta.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_HASH_LABEL: _hash_of(revision)})
    meta: Obj = {
        "name": name,
        "labels": labels,
        "ownerReferences": [controller_ref(sts, "apps/v1", "StatefulSet")],
    }
    for field in ("annotations", "finalizers"):
        if template_meta.get(field):
            meta[field] = copy.deepcopy(template_meta[field])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claims = {
        (t.get("metadata") or {}).get("name", ""): claim_name((t.get("metadata") or {}).get("name", ""), name)
        for t in sts["spec"].get("volumeClaimTemplates") or ()
    }
    volumes = [v for v in spec.get("volumes") or () if v.get("name") not in claims]
    volumes.extend({"name": volume, "persistentVolumeClaim": {"claimName": claim}} for volume, claim in claims.items())
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _revision_template(revision: Obj) -> Obj:
    """The pod template a revision records (its restoring patch without the `$patch` directive)."""
    template = ((revision.get("data") or {}).get("spec") or {}).get("template") or {}
    return {key: value for key, value in template.items() if key != "$patch"}


def _hash_of(revision: Obj) -> str:
    """What a stateful pod's controller-revision-hash label holds: its revision's name (kube's setPodRevision)."""
    return str(revision["metadata"]["name"])


def _current_revision(sts: Obj, update: Obj, old: list[Obj]) -> Obj:
    """The revision `status.currentRevision` names (the update revision for a new set or a pruned one)."""
    name = (sts.get("status") or {}).get("currentRevision")
    for revision in old:
        if revision["metadata"]["name"] == name:
            return revision
    return update


def _keeps_current(sts: Obj, index: int) -> bool:
    """A new pod at `index` gets the current revision: a RollingUpdate below its partition."""
    strategy = sts["spec"].get("updateStrategy") or {}
    if strategy.get("type") != "RollingUpdate":
        return False
    return index < ((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def _healthy(pod: Obj) -> bool:
    """isRunningAndReady and not terminating."""
    running = (pod.get("status") or {}).get("phase") == "Running"
    return running and is_pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")
