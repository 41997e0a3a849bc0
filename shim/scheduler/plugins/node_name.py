"""NodeName: a pod that names its node in spec.nodeName fits only there."""

from __future__ import annotations

from shim.scheduler.framework import NODE_ADD, CycleState, Status, unresolvable
from shim.scheduler.info import NodeInfo, PodInfo

REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = "NodeName"
    events = frozenset((NODE_ADD,))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        return bool(pod.node_name)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if node.name == pod.node_name else unresolvable(REASON)
