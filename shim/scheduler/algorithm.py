"""Choosing a node for one pod: filter a sample of the nodes, score the feasible ones, pick the best
(kube's schedule_one.go: findNodesThatFitPod, prioritizeNodes, selectHost)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from shim.scheduler.cache import Cache
from shim.scheduler.framework import CycleState, FilterFn, FitError, Framework, Status, run_filters
from shim.scheduler.info import NodeInfo, PodInfo
from shim.scheduler.queue import Nominator

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5

Filters = Sequence[tuple[str, FilterFn]]


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes are enough: all of a small cluster, else a share that shrinks with size
    (50% at 100 nodes, 42% at 1,000, at least 5%), never fewer than 100 (percentageOfNodesToScore)."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


class NodePicker:
    """Runs one pod's filters and scores over the cache's nodes."""

    def __init__(
        self,
        framework: Framework,
        cache: Cache,
        nominator: Nominator,
        percentage_of_nodes_to_score: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.framework = framework
        self.cache = cache
        self.nominator = nominator
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self._next_start = 0  # round-robin start, so successive pods sample different nodes

    def schedule(self, state: CycleState, pod: PodInfo, filters: Filters) -> str | FitError:
        """The chosen node's name, or why no node fits."""
        nodes = state.nodes
        if not nodes:
            return FitError(0, {})
        nominated_name = self.nominator.node_for(pod)
        nominated = self.cache.nodes.get(nominated_name) if nominated_name else None
        if nominated is not None and nominated.node is not None and self.check(state, pod, filters, nominated) is None:
            return nominated.name  # the room preemption made is still there
        feasible, statuses = self._find_feasible(state, pod, filters, nodes)
        if not feasible:
            rejected_everywhere = ", ".join(state.rejection.reasons) if state.rejection else ""
            return FitError(len(nodes), statuses, pre_filter_message=rejected_everywhere)
        if len(feasible) == 1:
            return feasible[0].name
        return self._select(feasible, self.framework.score(state, pod, feasible))

    def check(self, state: CycleState, pod: PodInfo, filters: Filters, node: NodeInfo) -> Status | None:
        """The filters on one node, counting the pods nominated there that outrank this one
        (RunFilterPluginsWithNominatedPods: the pod must fit both with and without them)."""
        if self.nominator:
            others = [p for p in self.nominator.pods_on(node.name) if p.key != pod.key and p.priority >= pod.priority]
            if others:
                with_nominated, what_if = node.clone(), state.clone()
                for other in others:
                    with_nominated.add_pod(other)
                    self.framework.update_state(what_if, pod, other, with_nominated, 1)
                status = run_filters(filters, what_if, pod, with_nominated)
                if status is not None:
                    return status
        return run_filters(filters, state, pod, node)

    def _find_feasible(
        self, state: CycleState, pod: PodInfo, filters: Filters, nodes: Sequence[NodeInfo]
    ) -> tuple[list[NodeInfo], dict[str, Status]]:
        total = len(nodes)
        wanted = num_feasible_nodes_to_find(total, self.percentage)
        start = self._next_start % total
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        check_node = self.check if self.nominator else None
        processed = 0
        for node in [*nodes[start:], *nodes[:start]]:
            processed += 1
            if check_node is not None:
                status = check_node(state, pod, filters, node)
            else:  # the hot loop: run_filters inlined
                status = None
                for name, check in filters:
                    status = check(state, pod, node)
                    if status is not None:
                        status = Status(status.code, status.reasons, name)
                        break
            if status is None:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
            else:
                statuses[node.name] = status
        self._next_start = (start + processed) % total
        return feasible, statuses

    def _select(self, nodes: Sequence[NodeInfo], scores: Sequence[int]) -> str:
        """The highest score; ties broken at random (selectHost)."""
        best = max(scores)
        winners = [node for node, score in zip(nodes, scores, strict=True) if score == best]
        return winners[0].name if len(winners) == 1 else self.rng.choice(winners).name
