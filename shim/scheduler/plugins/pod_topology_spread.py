"""PodTopologySpread: DoNotSchedule constraints keep the count of matching pods per topology domain within
maxSkew of the emptiest domain; ScheduleAnyway constraints prefer the emptier domains."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from shim.machinery.selectors import LabelSelector, SelectorError, label_selector_from_object
from shim.scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    CycleState,
    Status,
    unresolvable,
    unschedulable,
)
from shim.scheduler.info import NodeInfo, PodInfo
from shim.scheduler.terms import tolerates, with_label_keys

CONSTRAINTS_REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = "node(s) didn't match pod topology spread constraints (missing required label)"
HOSTNAME = "kubernetes.io/hostname"


@dataclass(frozen=True)
class Constraint:
    """A TopologySpreadConstraint with its selector parsed (matchLabelKeys merged in)."""

    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int
    honor_node_affinity: bool
    honor_node_taints: bool

    def counts_node(self, pod: PodInfo, node: NodeInfo) -> bool:
        """matchNodeInclusionPolicies: whether the node's pods count towards the spread at all."""
        if self.honor_node_affinity and pod.node_matcher is not None and not pod.node_matcher(node.labels, node.name):
            return False
        return not (self.honor_node_taints and any(not tolerates(pod.tolerations, t) for t in node.hard_taints))


@dataclass
class _FilterState:
    constraints: list[Constraint]
    counts: list[Counter[str]]  # per constraint: topology value -> matching pods
    minimum: list[float] = field(default_factory=list)  # per constraint: the emptiest domain's count

    def recompute_minimum(self) -> None:
        self.minimum = [min(c.values()) if c else math.inf for c in self.counts]

    def clone(self) -> _FilterState:
        return _FilterState(self.constraints, [Counter(c) for c in self.counts], list(self.minimum))


class PodTopologySpread:
    name = "PodTopologySpread"
    events = frozenset((NODE_ADD, NODE_UPDATE, ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE))

    # -- filter ----------------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        constraints = parse_constraints(pod, "DoNotSchedule")
        if not constraints:
            return False
        counts: list[Counter[str]] = [Counter() for _ in constraints]
        for node in state.nodes:
            if not _has_topology_keys(node, constraints):
                continue
            for i, constraint in enumerate(constraints):
                if constraint.counts_node(pod, node):
                    value = node.labels[constraint.topology_key]
                    counts[i][value] += _matching_pods(node, constraint.selector, pod.namespace)
        filter_state = _FilterState(constraints, counts)
        filter_state.recompute_minimum()
        state.data[self.name] = filter_state
        return True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        spread: _FilterState = state.data[self.name]
        for i, constraint in enumerate(spread.constraints):
            value = node.labels.get(constraint.topology_key)
            if value is None:
                return unresolvable(MISSING_LABEL_REASON)
            lowest = 0 if len(spread.counts[i]) < constraint.min_domains else spread.minimum[i]
            own = 1 if constraint.selector.matches(pod.labels) else 0
            if spread.counts[i][value] + own - lowest > constraint.max_skew:
                return unschedulable(CONSTRAINTS_REASON)
        return None

    def update_state(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int) -> None:
        spread: _FilterState | None = state.data.get(self.name)
        if spread is None or other.namespace != pod.namespace or not _has_topology_keys(node, spread.constraints):
            return
        for i, constraint in enumerate(spread.constraints):
            if constraint.selector.matches(other.labels) and constraint.counts_node(pod, node):
                spread.counts[i][node.labels[constraint.topology_key]] += delta
        spread.recompute_minimum()

    # -- score -----------------------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        constraints = parse_constraints(pod, "ScheduleAnyway")
        if not constraints:
            return False
        scored = [n for n in nodes if _has_topology_keys(n, constraints)]
        domains: list[Counter[str]] = [Counter() for _ in constraints]
        for node in scored:
            for i, constraint in enumerate(constraints):
                if constraint.topology_key != HOSTNAME:  # per-node counts are taken in score()
                    domains[i][node.labels[constraint.topology_key]] += 0
        weights = [
            math.log((len(scored) if c.topology_key == HOSTNAME else len(domains[i])) + 2)
            for i, c in enumerate(constraints)
        ]
        for node in state.nodes:
            if not _has_topology_keys(node, constraints):
                continue
            for i, constraint in enumerate(constraints):
                value = node.labels[constraint.topology_key]
                if value in domains[i] and constraint.counts_node(pod, node):
                    domains[i][value] += _matching_pods(node, constraint.selector, pod.namespace)
        state.data[self.name + "/score"] = (constraints, domains, weights, {n.name for n in scored})
        return True

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        constraints, domains, weights, scored = state.data[self.name + "/score"]
        if node.name not in scored:
            return -1  # ignored: no score, see normalize
        total = 0.0
        for i, constraint in enumerate(constraints):
            if constraint.topology_key == HOSTNAME:
                count = _matching_pods(node, constraint.selector, pod.namespace)
            else:
                count = domains[i][node.labels[constraint.topology_key]]
            total += count * weights[i] + (constraint.max_skew - 1)
        return math.floor(total + 0.5)  # Go's math.Round: halves away from zero

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        valid = [s for s in scores if s >= 0]
        low, high = min(valid, default=0), max(valid, default=0)
        for i, value in enumerate(scores):
            if value < 0:
                scores[i] = 0
            elif high == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (high + low - value) // high


def parse_constraints(pod: PodInfo, when_unsatisfiable: str) -> list[Constraint]:
    """The pod's constraints of one kind; a constraint whose selector kube cannot parse is dropped."""
    out = []
    for raw in pod.spread_constraints:
        if raw.get("whenUnsatisfiable") != when_unsatisfiable:
            continue
        try:
            selector = label_selector_from_object(with_label_keys(raw, pod.labels))
        except SelectorError:
            continue
        out.append(
            Constraint(
                max_skew=int(raw.get("maxSkew", 1)),
                topology_key=raw.get("topologyKey", ""),
                selector=selector,
                min_domains=int(raw.get("minDomains") or 1),
                honor_node_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
                honor_node_taints=(raw.get("nodeTaintsPolicy") or "Ignore") == "Honor",
            )
        )
    return out


def _has_topology_keys(node: NodeInfo, constraints: Sequence[Constraint]) -> bool:
    return all(c.topology_key in node.labels for c in constraints)


def _matching_pods(node: NodeInfo, selector: LabelSelector, namespace: str) -> int:
    """countPodsMatchSelector: pods of the namespace, not terminating, that the selector picks."""
    return sum(
        1 for p in node.pods.values() if p.namespace == namespace and not p.terminating and selector.matches(p.labels)
    )
