"""NodePorts: a pod's hostPorts must be free on the node (the same port on 0.0.0.0 clashes with every IP)."""

from __future__ import annotations

from shim.scheduler.framework import ASSIGNED_POD_DELETE, NODE_ADD, CycleState, Status, unschedulable
from shim.scheduler.info import NodeInfo, PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts:
    name = "NodePorts"
    events = frozenset((NODE_ADD, ASSIGNED_POD_DELETE))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return unschedulable(REASON) if node.ports_conflict(pod.host_ports) else None
