"""InterPodAffinity: required pod affinity / anti-affinity (the pod's own and that of pods already running)
filter nodes by topology domain; preferred terms (and running pods' terms about this pod) score them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
from shim.scheduler.terms import AffinityTerm, Labels

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1  # InterPodAffinityArgs.hardPodAffinityWeight default

Domain = tuple[str, str]  # (topology key, value)


@dataclass
class _FilterState:
    existing_anti_affinity: Counter[Domain] = field(default_factory=Counter)  # running pods that repel this one
    affinity: Counter[Domain] = field(default_factory=Counter)  # pods matching all the pod's affinity terms
    anti_affinity: Counter[Domain] = field(default_factory=Counter)  # pods the pod's anti-affinity repels

    def clone(self) -> _FilterState:
        return _FilterState(Counter(self.existing_anti_affinity), Counter(self.affinity), Counter(self.anti_affinity))


class InterPodAffinity:
    name = "InterPodAffinity"
    events = frozenset((NODE_ADD, NODE_UPDATE, ASSIGNED_POD_ADD, ASSIGNED_POD_UPDATE, ASSIGNED_POD_DELETE))

    def __init__(
        self,
        pods_with_required_anti_affinity: Mapping[str, PodInfo],
        pods_with_affinity: Mapping[str, PodInfo],
    ) -> None:
        # the cache's cluster-wide indexes: a pod without terms of its own is only checked when some running
        # pod has terms that could concern it
        self._anti_affinity_pods = pods_with_required_anti_affinity
        self._affinity_pods = pods_with_affinity

    # -- filter ----------------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool:
        if not (pod.required_affinity or pod.required_anti_affinity or self._anti_affinity_pods):
            return False
        counts = _FilterState()
        for node in state.nodes:
            self._count_node(state, counts, pod, node)
        state.data[self.name] = counts
        return True

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        counts: _FilterState = state.data[self.name]
        labels = node.labels
        if pod.required_affinity and not _affinity_satisfied(counts, pod, labels, state.namespace_labels):
            return unresolvable(AFFINITY_REASON)
        for term in pod.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and counts.anti_affinity[(term.topology_key, value)] > 0:
                return unschedulable(ANTI_AFFINITY_REASON)
        if counts.existing_anti_affinity:
            for domain in labels.items():
                if counts.existing_anti_affinity[domain] > 0:
                    return unschedulable(EXISTING_ANTI_AFFINITY_REASON)
        return None

    def update_state(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int) -> None:
        counts = state.data.get(self.name)
        if counts is not None:
            self._count_pod(state, counts, pod, other, node.labels, delta)

    def _count_node(self, state: CycleState, counts: _FilterState, pod: PodInfo, node: NodeInfo) -> None:
        if pod.required_affinity or pod.required_anti_affinity:
            others = node.pods.values()
        else:  # only running pods' anti-affinity can concern this pod
            others = node.pods_with_required_anti_affinity.values()
        for other in others:
            self._count_pod(state, counts, pod, other, node.labels, 1)

    def _count_pod(
        self,
        state: CycleState,
        counts: _FilterState,
        pod: PodInfo,
        other: PodInfo,
        labels: Labels,
        delta: int,
    ) -> None:
        ns_labels = state.namespace_labels
        for term in other.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and term.matches(pod.namespace, pod.labels, ns_labels):
                counts.existing_anti_affinity[(term.topology_key, value)] += delta
        if pod.required_affinity and all(
            t.matches(other.namespace, other.labels, ns_labels) for t in pod.required_affinity
        ):
            for term in pod.required_affinity:
                value = labels.get(term.topology_key)
                if value is not None:
                    counts.affinity[(term.topology_key, value)] += delta
        for term in pod.required_anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and term.matches(other.namespace, other.labels, ns_labels):
                counts.anti_affinity[(term.topology_key, value)] += delta

    # -- score -----------------------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        own_terms = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not own_terms and not self._affinity_pods:
            return False
        scores: Counter[Domain] = Counter()
        ns_labels = state.namespace_labels
        for node in state.nodes:
            if not node.labels:
                continue
            others = node.pods.values() if own_terms else node.pods_with_affinity.values()
            for other in others:
                # the pod's preferences about the running pod, then the running pod's terms about this pod
                _add_scores(scores, pod.preferred_affinity, other, node.labels, 1, ns_labels)
                _add_scores(scores, pod.preferred_anti_affinity, other, node.labels, -1, ns_labels)
                _add_scores(scores, other.required_affinity, pod, node.labels, HARD_POD_AFFINITY_WEIGHT, ns_labels)
                _add_scores(scores, other.preferred_affinity, pod, node.labels, 1, ns_labels)
                _add_scores(scores, other.preferred_anti_affinity, pod, node.labels, -1, ns_labels)
        state.data[self.name + "/score"] = scores
        return bool(scores)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: Counter[Domain] = state.data[self.name + "/score"]
        return sum(scores.get(domain, 0) for domain in node.labels.items())

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        low, high = min(scores, default=0), max(scores, default=0)
        spread = high - low
        for i, value in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * (value - low) / spread) if spread > 0 else 0


def _affinity_satisfied(
    counts: _FilterState, pod: PodInfo, labels: Labels, namespace_labels: Mapping[str, Labels]
) -> bool:
    """Every affinity term has a matching pod in the node's domain; or, when no pod anywhere matches, the pod
    matches its own terms (the first pod of a group that wants to be together)."""
    pods_exist = True
    for term in pod.required_affinity:
        value = labels.get(term.topology_key)
        if value is None:
            return False  # the node must have every topology the terms speak of
        if counts.affinity[(term.topology_key, value)] <= 0:
            pods_exist = False
    if pods_exist:
        return True
    if any(v > 0 for v in counts.affinity.values()):
        return False
    return all(t.matches(pod.namespace, pod.labels, namespace_labels) for t in pod.required_affinity)


def _add_scores(
    scores: Counter[Domain],
    terms: Sequence[AffinityTerm],
    target: PodInfo,
    node_labels: Labels,
    multiplier: int,
    namespace_labels: Mapping[str, Labels],
) -> None:
    """Each term that `target` matches adds multiplier * weight to the domain of the node it is about."""
    for term in terms:
        value = node_labels.get(term.topology_key)
        if value is not None and term.matches(target.namespace, target.labels, namespace_labels):
            scores[(term.topology_key, value)] += multiplier * term.weight
