"""Preemption (kube's DefaultPreemption PostFilter): when no node fits a pod, find the node where evicting
the fewest, least important lower-priority pods makes it fit.

Per node (SelectVictimsOnNode): remove every lower-priority pod; if the pod still does not fit, preemption
cannot help there. Otherwise give pods back, most important first, as long as the pod still fits; the rest
are the victims. Among candidate nodes (pickOneNodeForPreemption): the lowest highest-priority victim, then
the lowest priority sum, then the fewest victims, then the latest-started victims. PodDisruptionBudgets are
not consulted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from shim.scheduler.algorithm import Filters, NodePicker
from shim.scheduler.framework import Code, CycleState, FitError, Status, unresolvable
from shim.scheduler.info import NodeInfo, PodInfo

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
POLICY_NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING_VICTIM = "not eligible due to a terminating pod on the nominated node."
MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
_PRIORITY_OFFSET = 2**31  # kube adds MaxInt32+1 so that sums of negative priorities still order correctly


@dataclass
class Candidate:
    """A node and the pods to evict from it, most important first."""

    node: NodeInfo
    victims: list[PodInfo]


class Preemptor:
    """Finds a preemption candidate for a pod that fits nowhere."""

    def __init__(self, picker: NodePicker, rng: random.Random | None = None) -> None:
        self.picker = picker
        self.rng = rng or random.Random()

    def find(self, state: CycleState, pod: PodInfo, filters: Filters, fit: FitError) -> Candidate | str:
        """The candidate, or the message saying why preemption cannot help (without the `preemption: `)."""
        if pod.preemption_policy == "Never":
            return POLICY_NEVER
        if self._waiting_for_victims(pod, fit):
            return TERMINATING_VICTIM
        nodes = state.nodes
        potential = [n for n in nodes if _might_help(fit.statuses.get(n.name))]
        statuses: dict[str, Status] = {}
        candidates: list[Candidate] = []
        if potential:
            wanted = _num_candidates(len(potential))
            offset = self.rng.randrange(len(potential))
            for node in [*potential[offset:], *potential[:offset]]:
                victims, status = self._select_victims(state, pod, filters, node)
                if victims is not None:
                    candidates.append(Candidate(node, victims))
                    if len(candidates) >= wanted:
                        break
                elif status is not None:
                    statuses[node.name] = status
        if not candidates:
            return FitError(len(nodes), statuses, absent_reason=NOT_HELPFUL).message()
        return pick_one(candidates)

    def _waiting_for_victims(self, pod: PodInfo, fit: FitError) -> bool:
        """PodEligibleToPreemptOthers: an earlier preemption for this pod is still terminating its victims."""
        nominated = self.picker.nominator.node_for(pod)
        if not nominated:
            return False
        status = fit.statuses.get(nominated)
        if status is not None and status.code == Code.UNRESOLVABLE:
            return False  # the nomination went stale: preempt afresh
        node = self.picker.cache.nodes.get(nominated)
        return node is not None and any(
            p.priority < pod.priority and _terminating_by_preemption(p) for p in node.pods.values()
        )

    def _select_victims(
        self, state: CycleState, pod: PodInfo, filters: Filters, node: NodeInfo
    ) -> tuple[list[PodInfo] | None, Status | None]:
        lower = [p for p in node.pods.values() if p.priority < pod.priority]
        if not lower:
            return None, unresolvable(NO_VICTIMS)
        framework = self.picker.framework
        what_if, view = state.clone(), node.clone()
        for other in lower:
            view.remove_pod(other.key)
            framework.update_state(what_if, pod, other, view, -1)
        status = self.picker.check(what_if, pod, filters, view)
        if status is not None:
            return None, status
        lower.sort(key=_importance)
        victims = []
        for other in lower:  # reprieve as many as possible, most important first
            view.add_pod(other)
            framework.update_state(what_if, pod, other, view, 1)
            if self.picker.check(what_if, pod, filters, view) is not None:
                view.remove_pod(other.key)
                framework.update_state(what_if, pod, other, view, -1)
                victims.append(other)
        return victims, None


def pick_one(candidates: Sequence[Candidate]) -> Candidate:
    """pickOneNodeForPreemption: narrow the candidates criterion by criterion; the first one left wins."""
    for candidate in candidates:
        if not candidate.victims:  # room without evicting anyone (nominated pods moved meanwhile)
            return candidate
    criteria = (
        lambda c: -c.victims[0].priority,  # lowest highest-priority victim
        lambda c: -sum(v.priority + _PRIORITY_OFFSET for v in c.victims),  # lowest priority sum
        lambda c: -len(c.victims),  # fewest victims
        lambda c: _earliest_start_of_top_priority(c.victims),  # latest start among the top-priority victims
    )
    remaining = list(candidates)
    for criterion in criteria:
        best = max(criterion(c) for c in remaining)
        remaining = [c for c in remaining if criterion(c) == best]
        if len(remaining) == 1:
            break
    return remaining[0]


def _might_help(status: Status | None) -> bool:
    """nodesWherePreemptionMightHelp: only a node rejected for a reason that removing pods can fix."""
    return status is None or status.code != Code.UNRESOLVABLE


def _num_candidates(num_nodes: int) -> int:
    wanted = max(num_nodes * MIN_CANDIDATE_NODES_PERCENTAGE // 100, MIN_CANDIDATE_NODES_ABSOLUTE)
    return min(wanted, num_nodes)


def _importance(pod: PodInfo) -> tuple[int, str]:
    """MoreImportantPod first: higher priority, then the earlier start."""
    return -pod.priority, pod.start_time or "~"  # "~" sorts after any timestamp: not started is newest


def _earliest_start_of_top_priority(victims: Sequence[PodInfo]) -> str:
    top = victims[0].priority
    return min(v.start_time or "~" for v in victims if v.priority == top)


def _terminating_by_preemption(pod: PodInfo) -> bool:
    return pod.terminating and any(
        c.get("type") == "DisruptionTarget" and c.get("reason") == "PreemptionByScheduler"
        for c in (pod.pod.get("status") or {}).get("conditions") or ()
    )
