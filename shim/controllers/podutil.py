"""Pod facts controllers share: active, ready, available, and which pods to delete first when scaling down.

Follows `pkg/api/v1/pod/util.go` (IsPodReady, IsPodAvailable) and `pkg/controller/controller_utils.go`
(IsPodActive, ActivePodsWithRanks with the LogarithmicScaleDown ordering kube has enabled since 1.22).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shim.machinery import timefmt

Obj = dict[str, Any]

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}  # other phases rank like Pending (Go's map zero)


def now() -> datetime:
    """The current time, timezone-aware (what the helpers here compare timestamps with)."""
    return datetime.now(UTC)


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as written by the API server, or None."""
    if not text:
        return None
    return timefmt.parse_time(text)


def is_pod_active(pod: Obj) -> bool:
    """Not finished (Succeeded/Failed) and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def ready_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition
    return None


def is_pod_ready(pod: Obj) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int, at: datetime) -> bool:
    """Ready for at least `min_ready_seconds` (by the Ready condition's lastTransitionTime)."""
    condition = ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return False
    if min_ready_seconds == 0:
        return True
    since = parse_time(condition.get("lastTransitionTime"))
    return since is not None and (at - since).total_seconds() > min_ready_seconds


def pods_to_delete(pods: list[Obj], related: Iterable[Obj], count: int, at: datetime) -> list[Obj]:
    """The `count` pods kube's ReplicaSet controller deletes first: unscheduled, pending, not ready, crowded
    onto a node with related pods, ready for less time, restarted more, and newer go first."""
    if count >= len(pods):
        return pods[:count]
    on_node = Counter(p.get("spec", {}).get("nodeName", "") for p in related if is_pod_active(p))
    ranked = [(_DeletionRank(pod, on_node[pod.get("spec", {}).get("nodeName", "")], at)) for pod in pods]
    ranked.sort(key=functools.cmp_to_key(_compare))
    return [r.pod for r in ranked[:count]]


class _DeletionRank:
    """The facts `ActivePodsWithRanks.Less` compares, computed once per pod."""

    __slots__ = (
        "cost",
        "created",
        "node",
        "phase",
        "pod",
        "ready",
        "ready_since",
        "restarts",
        "siblings",
        "uid",
    )

    def __init__(self, pod: Obj, siblings: int, at: datetime) -> None:
        meta = pod["metadata"]
        self.pod = pod
        self.node = pod.get("spec", {}).get("nodeName", "")
        self.phase = _PHASE_ORDER.get((pod.get("status") or {}).get("phase", ""), 0)
        self.ready = is_pod_ready(pod)
        self.cost = _deletion_cost(meta.get("annotations") or {})
        self.siblings = siblings
        condition = ready_condition(pod) if self.ready else None
        self.ready_since = _Age(parse_time(condition.get("lastTransitionTime")) if condition else None, at)
        self.restarts = _max_restarts(pod)
        self.created = _Age(parse_time(meta.get("creationTimestamp")), at)
        self.uid = meta.get("uid", "")


class _Age:
    """A timestamp and kube's logarithmic age bucket for it: log2 of the age in nanoseconds."""

    __slots__ = ("bucket", "moment")

    def __init__(self, moment: datetime | None, at: datetime) -> None:
        self.moment = moment
        age_ns = (at - moment).total_seconds() * 1e9 if moment is not None else 0.0
        self.bucket = int(math.log2(age_ns)) if age_ns > 0 else -1


def _compare(a: _DeletionRank, b: _DeletionRank) -> int:
    """-1 when `a` should be deleted before `b`."""
    if a.node != b.node and (not a.node or not b.node):
        return -1 if not a.node else 1  # unassigned before assigned
    if a.phase != b.phase:
        return -1 if a.phase < b.phase else 1  # Pending < Unknown < Running
    if a.ready != b.ready:
        return -1 if not a.ready else 1  # not ready before ready
    if a.cost != b.cost:
        return -1 if a.cost < b.cost else 1  # lower pod-deletion-cost first
    if a.siblings != b.siblings:
        return -1 if a.siblings > b.siblings else 1  # doubled-up before alone
    if a.ready and b.ready and a.ready_since.moment != b.ready_since.moment:
        return _younger_first(a.ready_since, b.ready_since, a.uid, b.uid)
    if a.restarts != b.restarts:
        return -1 if a.restarts > b.restarts else 1  # more restarts first
    if a.created.moment != b.created.moment:
        return _younger_first(a.created, b.created, a.uid, b.uid)
    return 0


def _younger_first(a: _Age, b: _Age, uid_a: str, uid_b: str) -> int:
    """Missing timestamps first, then the younger bucket; pods in the same bucket are ordered by uid."""
    if a.moment is None or b.moment is None:
        return -1 if a.moment is None else 1
    if a.bucket == b.bucket:
        return -1 if uid_a < uid_b else (1 if uid_a > uid_b else 0)
    return -1 if a.bucket < b.bucket else 1


def _deletion_cost(annotations: dict[str, str]) -> int:
    """The `controller.kubernetes.io/pod-deletion-cost` annotation (0 when absent or not an int32)."""
    try:
        cost = int(annotations.get(DELETION_COST_ANNOTATION, "0"))
    except ValueError:
        return 0
    return cost if -(2**31) <= cost < 2**31 else 0


def _max_restarts(pod: Obj) -> tuple[int, int]:
    """(regular containers' max restarts, restartable init containers' max restarts)."""
    status = pod.get("status") or {}
    regular = max((c.get("restartCount", 0) for c in status.get("containerStatuses") or ()), default=0)
    sidecars = {
        c.get("name") for c in pod.get("spec", {}).get("initContainers") or () if c.get("restartPolicy") == "Always"
    }
    sidecar = max(
        (c.get("restartCount", 0) for c in status.get("initContainerStatuses") or () if c.get("name") in sidecars),
        default=0,
    )
    return regular, sidecar
