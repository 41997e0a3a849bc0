"""VolumeRestrictions: a ReadWriteOncePod claim is used by one pod at a time (kube's plugins/volumerestrictions).

A pod naming such a claim while another placed pod (bound or assumed) names it fits nowhere until that pod is
gone. (kube may preempt the other pod; here the pod waits.)
"""

from __future__ import annotations

from collections.abc import Mapping

from shim.client import SharedInformer
from shim.scheduler.framework import ASSIGNED_POD_DELETE, CycleState, Status, unresolvable
from shim.scheduler.info import NodeInfo, PodInfo
from shim.scheduler.plugins.volume_binding import PVC_CHANGE

REASON = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"


class VolumeRestrictions:
    """Reads the claims' access modes from the scheduler's claim informer and their users from its cache."""

    name = "VolumeRestrictions"
    events = frozenset((ASSIGNED_POD_DELETE, PVC_CHANGE))

    def __init__(self, claim_users: Mapping[str, int], claims: SharedInformer) -> None:
        self.claim_users = claim_users  # `namespace/claim` -> placed pods naming it (the scheduler cache's)
        self.claims = claims

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool | Status:
        for key in pod.claim_keys:
            claim = self.claims.get(key)
            if claim is None or "ReadWriteOncePod" not in (claim.get("spec") or {}).get("accessModes", ()):
                continue
            if self.claim_users.get(key, 0) > 0:
                return unresolvable(REASON)
        return False  # nothing to check per node

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None
