"""TaintToleration: NoSchedule and NoExecute taints must be tolerated; untolerated PreferNoSchedule taints
lower a node's score."""

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
from shim.scheduler.terms import tolerates


class TaintToleration:
    name = "TaintToleration"
    events = frozenset((NODE_ADD, NODE_UPDATE))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        return True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.hard_taints:
            if not tolerates(pod.tolerations, taint):
                return unresolvable(
                    f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
                )
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        if not any(node.prefer_taints for node in nodes):
            return False  # every node would score the same
        # tolerations without an effect apply to every effect, PreferNoSchedule included
        state.data[self.name] = [t for t in pod.tolerations if t.get("effect") in (None, "", "PreferNoSchedule")]
        return True

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        tolerations = state.data[self.name]
        return sum(1 for taint in node.prefer_taints if not tolerates(tolerations, taint))

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
