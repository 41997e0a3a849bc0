"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate the cordon taint."""

from __future__ import annotations

from shim.scheduler.framework import NODE_ADD, NODE_UPDATE, CycleState, Status, unresolvable
from shim.scheduler.info import NodeInfo, PodInfo
from shim.scheduler.terms import tolerates

REASON = "node(s) were unschedulable"
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    name = "NodeUnschedulable"
    events = frozenset((NODE_ADD, NODE_UPDATE))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        return True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerates(pod.tolerations, CORDON_TAINT):
            return unresolvable(REASON)
        return None
