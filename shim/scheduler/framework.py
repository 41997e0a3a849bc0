"""The scheduling framework: plugins with filter and score extension points, and the cycle state they share.

Shaped like kube-scheduler's `pkg/scheduler/framework/interface.go`. A plugin is a small object that
implements some of these methods; the framework runs whichever it finds, and knows no plugin by name:

- `pre_filter(state, pod) -> bool | Status`: prepare per-cycle data in `state.data`; False skips `filter` this
  cycle (the pod has nothing this plugin checks, kube's Skip status); a Status rejects the pod on every node at
  once (kube's PreFilter Unschedulable: a missing claim), and FitError says it once instead of per node.
- `filter(state, pod, node) -> Status | None`: None when the pod may run on the node.
- `update_state(state, pod, other, node, delta)`: `other` was added (+1) to or removed (-1) from `node`
  in a what-if (preemption, nominated pods); keep the pre_filter data in step (kube's AddPod/RemovePod).
- `pre_score(state, pod, nodes) -> bool`: prepare scoring; False skips `score` (every node would tie).
- `score(state, pod, node) -> int` and `normalize(state, pod, scores)` (in place, to 0..100).
- `events`: the cluster events after which a pod this plugin rejected may fit (kube's EventsToRegister).
- `reserve(pod, node)` / `unreserve(pod, node)`: the pod was assumed onto the node (decisions for the next pods
  must see what it takes), or its binding failed (kube's Reserve/Unreserve).
- `async pre_bind(pod, node)`: write what the chosen node implies before the pod is bound (kube's PreBind).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from shim.scheduler.info import NodeInfo, PodInfo

MAX_NODE_SCORE = 100

# cluster events (kube's framework.ClusterEvent, coarser)
NODE_ADD = "NodeAdd"
NODE_UPDATE = "NodeUpdate"
ASSIGNED_POD_ADD = "AssignedPodAdd"
ASSIGNED_POD_UPDATE = "AssignedPodUpdate"
ASSIGNED_POD_DELETE = "AssignedPodDelete"


class Code(enum.IntEnum):
    """Why a filter said no: Unschedulable may be fixed by preemption, UnschedulableAndUnresolvable not."""

    UNSCHEDULABLE = 2
    UNRESOLVABLE = 3


@dataclass(frozen=True, slots=True)
class Status:
    """A rejection: its code, the reasons kubectl users read, and the plugin that said it."""

    code: Code
    reasons: tuple[str, ...]
    plugin: str = ""


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNRESOLVABLE, reasons)


@dataclass(slots=True)
class CycleState:
    """What one scheduling attempt of one pod shares between plugins (kube's CycleState)."""

    nodes: Sequence[NodeInfo]  # every node of the cluster, for plugins that count across topologies
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    rejection: Status | None = None  # a pre_filter's verdict for every node

    def clone(self) -> CycleState:
        """A copy whose plugin data can be updated without touching this one's."""
        data = {k: v.clone() if hasattr(v, "clone") else v for k, v in self.data.items()}
        return CycleState(self.nodes, self.namespace_labels, data, self.rejection)


class Plugin(Protocol):
    name: str
    events: frozenset[str]


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo) -> bool | Status: ...

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool: ...

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None: ...


@runtime_checkable
class ReservePlugin(Protocol):
    name: str

    def reserve(self, pod: PodInfo, node: str) -> None: ...

    def unreserve(self, pod: PodInfo, node: str) -> None: ...


@runtime_checkable
class PreBindPlugin(Protocol):
    name: str

    async def pre_bind(self, pod: PodInfo, node: str) -> None: ...


FilterFn = Callable[[CycleState, PodInfo, NodeInfo], "Status | None"]


class Framework:
    """Runs the plugins' extension points in their configured order, with score weights."""

    def __init__(self, plugins: Sequence[Plugin], weights: Mapping[str, int]) -> None:
        self.filters = [p for p in plugins if isinstance(p, FilterPlugin)]
        self.scorers = [(p, weights.get(p.name, 1)) for p in plugins if isinstance(p, ScorePlugin)]
        self._updaters = [p for p in plugins if hasattr(p, "update_state")]
        self._reservers = [p for p in plugins if isinstance(p, ReservePlugin)]
        self._pre_binders = [p for p in plugins if isinstance(p, PreBindPlugin)]
        self._interest: dict[str, frozenset[str]] = {}
        for plugin in plugins:
            for event in plugin.events:
                self._interest[event] = self._interest.get(event, frozenset()) | {plugin.name}

    def pre_filter(self, state: CycleState, pod: PodInfo) -> list[tuple[str, FilterFn]]:
        """The filters that apply to this pod, in order (their pre_filter has run); after a pre_filter's
        rejection (recorded in `state.rejection`), the one filter that says it for every node."""
        filters: list[tuple[str, FilterFn]] = []
        for plugin in self.filters:
            verdict = plugin.pre_filter(state, pod)
            if isinstance(verdict, Status):
                state.rejection = Status(verdict.code, verdict.reasons, plugin.name)
                return [(plugin.name, _rejecting(state.rejection))]
            if verdict:
                filters.append((plugin.name, plugin.filter))
        return filters

    def update_state(self, state: CycleState, pod: PodInfo, other: PodInfo, node: NodeInfo, delta: int) -> None:
        for plugin in self._updaters:
            plugin.update_state(state, pod, other, node, delta)

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """The weighted sum of every applicable plugin's normalized score, per node."""
        totals = [0] * len(nodes)
        for plugin, weight in self.scorers:
            if not plugin.pre_score(state, pod, nodes):
                continue
            score = plugin.score
            scores = [score(state, pod, node) for node in nodes]
            plugin.normalize(state, pod, scores)
            totals = [total + value * weight for total, value in zip(totals, scores, strict=True)]
        return totals

    def reserve(self, pod: PodInfo, node: str) -> None:
        """The pod was assumed onto `node`: plugins note what that takes, before the next pod is decided."""
        for plugin in self._reservers:
            plugin.reserve(pod, node)

    def unreserve(self, pod: PodInfo, node: str) -> None:
        """The pod's binding to `node` failed: plugins forget what `reserve` noted."""
        for plugin in self._reservers:
            plugin.unreserve(pod, node)

    async def pre_bind(self, pod: PodInfo, node: str) -> None:
        """What must be written before the pod is bound to `node` (kube's PreBind: a claim's selected node)."""
        for plugin in self._pre_binders:
            await plugin.pre_bind(pod, node)

    def interested_plugins(self, event: str) -> frozenset[str]:
        """The plugins whose rejections `event` may lift."""
        return self._interest.get(event, frozenset())


def _rejecting(status: Status) -> FilterFn:
    """A filter that rejects every node with `status`."""
    return lambda _state, _pod, _node: status


def run_filters(
    filters: Sequence[tuple[str, FilterFn]], state: CycleState, pod: PodInfo, node: NodeInfo
) -> Status | None:
    """The first rejection among the filters, tagged with its plugin (kube stops at the first one)."""
    for name, check in filters:
        status = check(state, pod, node)
        if status is not None:
            return Status(status.code, status.reasons, name)
    return None


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """helper.DefaultNormalizeScore: scale to 0..100 by the highest score; `reverse` makes low scores win."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, value in enumerate(scores):
        scaled = MAX_NODE_SCORE * value // highest
        scores[i] = MAX_NODE_SCORE - scaled if reverse else scaled


NO_NODES_MESSAGE = "no nodes available to schedule pods"


@dataclass
class FitError:
    """No node fits: kube's FitError, whose message is what `kubectl describe pod` shows."""

    num_all_nodes: int
    statuses: dict[str, Status]  # node name -> why it was rejected
    post_filter_message: str = ""
    absent_reason: str = ""  # the reason for nodes missing from `statuses` (preemption: not helpful)
    pre_filter_message: str = ""  # a pre_filter rejected the pod everywhere: said once, without counts

    @property
    def rejected_by(self) -> frozenset[str]:
        """The plugins that rejected some node (to know which cluster events may help)."""
        return frozenset(s.plugin for s in self.statuses.values())

    def message(self) -> str:
        """`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {...}. <post>`"""
        if self.num_all_nodes == 0:
            return NO_NODES_MESSAGE
        reasons: Counter[str] = Counter()
        for status in self.statuses.values():
            reasons.update(status.reasons)
        missing = self.num_all_nodes - len(self.statuses)
        if missing > 0 and self.absent_reason:
            reasons[self.absent_reason] += missing
        text = f"0/{self.num_all_nodes} nodes are available:"
        histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())  # Go's sort.Strings
        if self.pre_filter_message:
            text += f" {self.pre_filter_message}."
        elif histogram:
            text += f" {', '.join(histogram)}."
        if self.post_filter_message:  # carries its own full stop
            text += f" {self.post_filter_message}"
        return text
