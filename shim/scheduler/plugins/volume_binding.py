"""VolumeBinding: a pod's PersistentVolumeClaims decide where it may run, and, for WaitForFirstConsumer
claims, the scheduler's choice decides where their volumes are made (kube's `plugins/volumebinding`).

- A claim that does not exist or is being deleted keeps the pod pending everywhere.
- A bound claim's volume must be reachable from the node (its node affinity).
- An unbound claim of an Immediate class (or of no class) waits for the binder: the pod stays pending.
- An unbound WaitForFirstConsumer claim fits a node when its class can provision there, or when a free
  matching volume is on the node; once placed (by an earlier pod sharing it), only on that node. Before the
  pod is bound, `pre_bind` writes the node to the claim's `volume.kubernetes.io/selected-node` annotation,
  which the binder (static volumes) and the provisioner (new ones) act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformer
from shim.machinery.storage import (
    NO_PROVISIONER,
    SELECTED_NODE,
    WAIT_FOR_FIRST_CONSUMER,
    claim_class,
    claim_names,
    volume_matches_claim,
)
from shim.scheduler.framework import NODE_ADD, NODE_UPDATE, CycleState, Status, unresolvable
from shim.scheduler.info import NodeInfo, PodInfo
from shim.scheduler.terms import node_selector_term

Obj = dict[str, Any]
NodeCheck = Callable[[NodeInfo], bool]

PVC_CHANGE = "PersistentVolumeClaimChange"
PV_CHANGE = "PersistentVolumeChange"
STORAGE_CLASS_CHANGE = "StorageClassChange"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
NODE_CONFLICT = "node(s) had volume node affinity conflict"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"


@dataclass
class _PodVolumes:
    """What one scheduling cycle learned about the pod's claims."""

    missing_volume: bool = False  # a bound claim's volume is gone
    bound_checks: list[NodeCheck] = field(default_factory=list)  # bound volumes' node affinity
    # per WaitForFirstConsumer claim: its volume can be had on the node (a free one there, or the node it was
    # placed on already)
    static_checks: list[NodeCheck] = field(default_factory=list)


class VolumeBinding:
    """Reads claims, volumes and classes from the scheduler's informers; writes selected-node before binding."""

    name = "VolumeBinding"
    events = frozenset((NODE_ADD, NODE_UPDATE, PVC_CHANGE, PV_CHANGE, STORAGE_CLASS_CHANGE))

    def __init__(
        self, client: ApiClient, claims: SharedInformer, volumes: SharedInformer, classes: SharedInformer
    ) -> None:
        self.client = client
        self.claims = claims
        self.volumes = volumes
        self.classes = classes
        # claim key -> the node a pod using it was assumed onto, from reserve until pre_bind annotated the claim
        # (kube's assume cache): the next pod sharing the claim goes to the same node
        self._placed: dict[str, str] = {}

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool | Status:
        names = claim_names(pod.pod)
        if not names:
            return False
        found = self._examine(pod, names)
        if isinstance(found, Status):
            return found
        state.data[self.name] = found
        return True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        found: _PodVolumes = state.data[self.name]
        if found.missing_volume:
            return unresolvable(PV_NOT_EXIST)
        if not all(check(node) for check in found.bound_checks):
            return unresolvable(NODE_CONFLICT)
        if not all(check(node) for check in found.static_checks):
            return unresolvable(BIND_CONFLICT)
        return None

    def reserve(self, pod: PodInfo, node: str) -> None:
        """Note the node of the pod's claims that wait for it, until their annotation says it."""
        for key, claim in self._waiting_claims(pod):
            if not (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE):
                self._placed[key] = node

    def unreserve(self, pod: PodInfo, node: str) -> None:
        for key, _claim in self._waiting_claims(pod):
            if self._placed.get(key) == node:
                del self._placed[key]

    async def pre_bind(self, pod: PodInfo, node: str) -> None:
        """Place the pod's WaitForFirstConsumer claims on `node` (kube's PreBind, without waiting for the bind:
        the node agent waits for the claims to be bound before it starts the pod)."""
        for key, claim in self._waiting_claims(pod):
            if (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE) != node:
                patch = {"metadata": {"annotations": {SELECTED_NODE: node}}}
                meta = claim["metadata"]
                try:
                    patched = await self.client.patch(self.claims.resource, meta["name"], patch, meta["namespace"])
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                else:
                    self.claims.observe(patched)  # the next pod's decision must not wait for the watch
            self._placed.pop(key, None)

    def _waiting_claims(self, pod: PodInfo) -> list[tuple[str, Obj]]:
        """(key, claim) of the pod's claims that are unbound under a WaitForFirstConsumer class."""
        waiting = []
        for name in claim_names(pod.pod):
            key = f"{pod.namespace}/{name}"
            claim = self.claims.get(key)
            if claim is not None and not claim["spec"].get("volumeName") and self._waits_for_consumer(claim):
                waiting.append((key, claim))
        return waiting

    def _examine(self, pod: PodInfo, names: list[str]) -> _PodVolumes | Status:
        """What the claims require of a node, or the PreFilter rejection (a claim missing, being deleted, or
        unbound under an Immediate class)."""
        found = _PodVolumes()
        for name in names:
            claim = self.claims.get(f"{pod.namespace}/{name}")
            if claim is None:
                return unresolvable(f'persistentvolumeclaim "{name}" not found')
            if claim["metadata"].get("deletionTimestamp"):
                return unresolvable(f'persistentvolumeclaim "{name}" is being deleted')
            volume_name = claim["spec"].get("volumeName")
            if volume_name:
                volume = self.volumes.get(volume_name)
                if volume is None:
                    found.missing_volume = True
                    continue
                found.bound_checks.append(_reachable_from(volume))
                continue
            if not self._waits_for_consumer(claim):
                return unresolvable(UNBOUND_IMMEDIATE)
            selected = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
            selected = selected or self._placed.get(f"{pod.namespace}/{name}")
            storage_class = self.classes.get(claim_class(claim)) or {}
            if selected:  # placed already (by another pod's scheduling): its volume is made there or nowhere
                found.static_checks.append(_named(selected))
            elif storage_class.get("provisioner") == NO_PROVISIONER:
                candidates = [pv for pv in self.volumes.list() if volume_matches_claim(pv, claim)]
                checks = [_reachable_from(pv) for pv in candidates]
                found.static_checks.append(_any_of(checks))
        return found

    def _waits_for_consumer(self, claim: Obj) -> bool:
        storage_class = self.classes.get(claim_class(claim))
        return storage_class is not None and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def _named(name: str) -> NodeCheck:
    return lambda node: node.name == name


def _any_of(checks: list[NodeCheck]) -> NodeCheck:
    return lambda node: any(check(node) for check in checks)


def _reachable_from(volume: Obj) -> NodeCheck:
    """The volume's required node affinity (its terms ORed) as a check on nodes; no affinity fits all."""
    terms = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    if not terms:
        return lambda node: True
    matchers = [node_selector_term(term) for term in terms]
    return lambda node: any(matches(node.labels, node.name) for matches in matchers)
