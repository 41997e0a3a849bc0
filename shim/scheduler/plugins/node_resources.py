"""NodeResourcesFit (requests against what is left of allocatable; LeastAllocated scoring) and
NodeResourcesBalancedAllocation (prefer nodes whose cpu and memory stay equally used)."""

from __future__ import annotations

from collections.abc import Sequence

from shim.scheduler.framework import (
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    CycleState,
    Status,
    unschedulable,
)
from shim.scheduler.info import NodeInfo, PodInfo

TOO_MANY_PODS = "Too many pods"


class NodeResourcesFit:
    """Filter: cpu, memory, ephemeral-storage, extended resources and the pod count must fit.
    Score: LeastAllocated over cpu and memory (weights 1), with default requests for containers without."""

    name = "NodeResourcesFit"
    events = frozenset((NODE_ADD, NODE_UPDATE, ASSIGNED_POD_DELETE, ASSIGNED_POD_UPDATE))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        return True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        want, free, used = pod.requests, node.allocatable, node.requested
        if (  # the common case in one expression; anything else gets the exact, reason-collecting check
            len(node.pods) < node.allowed_pods
            and want.milli_cpu <= free.milli_cpu - used.milli_cpu
            and want.memory <= free.memory - used.memory
            and want.ephemeral_storage <= free.ephemeral_storage - used.ephemeral_storage
            and not want.scalars
        ):
            return None
        reasons = insufficient_resources(pod, node)
        return unschedulable(*reasons) if reasons else None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        return True

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cpu_capacity, memory_capacity = node.allocatable.milli_cpu, node.allocatable.memory
        cpu = node.non_zero_cpu + pod.non_zero_cpu
        memory = node.non_zero_memory + pod.non_zero_memory
        if cpu_capacity and memory_capacity:  # the common case, inline: this runs for every sampled node
            cpu_score = (cpu_capacity - cpu) * MAX_NODE_SCORE // cpu_capacity if cpu <= cpu_capacity else 0
            memory_score = (
                (memory_capacity - memory) * MAX_NODE_SCORE // memory_capacity if memory <= memory_capacity else 0
            )
            return (cpu_score + memory_score) // 2
        # a resource the node does not offer is left out of the average
        scored = [_least_requested(r, c) for r, c in ((cpu, cpu_capacity), (memory, memory_capacity)) if c]
        return sum(scored) // len(scored) if scored else 0

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        """Scores are already 0..100."""


class NodeResourcesBalancedAllocation:
    """Score: 100 * (1 - the spread of the cpu and memory fractions the node would have with the pod)."""

    name = "NodeResourcesBalancedAllocation"
    events: frozenset[str] = frozenset()

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        return bool(pod.requests.milli_cpu or pod.requests.memory)  # a best-effort pod is not scored

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        cpu_capacity, memory_capacity = node.allocatable.milli_cpu, node.allocatable.memory
        if not (cpu_capacity and memory_capacity):
            return MAX_NODE_SCORE  # one resource (or none) has no spread
        cpu = (node.requested.milli_cpu + pod.requests.milli_cpu) / cpu_capacity
        memory = (node.requested.memory + pod.requests.memory) / memory_capacity
        spread = abs((cpu if cpu < 1.0 else 1.0) - (memory if memory < 1.0 else 1.0)) / 2  # fractions cap at 1
        return int((1 - spread) * MAX_NODE_SCORE)

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        """Scores are already 0..100."""


def insufficient_resources(pod: PodInfo, node: NodeInfo) -> list[str]:
    """fitsRequest: every resource the pod asks for that the node has not got left, in kube's words."""
    want, free, used = pod.requests, node.allocatable, node.requested
    reasons = []
    if len(node.pods) + 1 > node.allowed_pods:
        reasons.append(TOO_MANY_PODS)
    if want.milli_cpu > 0 and want.milli_cpu > free.milli_cpu - used.milli_cpu:
        reasons.append("Insufficient cpu")
    if want.memory > 0 and want.memory > free.memory - used.memory:
        reasons.append("Insufficient memory")
    if want.ephemeral_storage > 0 and want.ephemeral_storage > free.ephemeral_storage - used.ephemeral_storage:
        reasons.append("Insufficient ephemeral-storage")
    for name, amount in want.scalars.items():
        if amount > 0 and amount > free.scalars.get(name, 0) - used.scalars.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def _least_requested(requested: int, capacity: int) -> int:
    return 0 if requested > capacity else (capacity - requested) * MAX_NODE_SCORE // capacity
