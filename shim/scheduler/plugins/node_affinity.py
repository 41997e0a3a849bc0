"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes; preferred terms add weight."""

from __future__ import annotations

from collections.abc import Sequence

from shim.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    CycleState,
    Status,
    default_normalize,
    unresolvable,
)
from shim.scheduler.info import NodeInfo, PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"


class NodeAffinity:
    name = "NodeAffinity"
    events = frozenset((NODE_ADD, NODE_UPDATE))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        return pod.node_matcher is not None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        assert pod.node_matcher is not None
        return None if pod.node_matcher(node.labels, node.name) else unresolvable(REASON)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        return bool(pod.preferred_node_terms)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(weight for weight, matches in pod.preferred_node_terms if matches(node.labels, node.name))

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores)
