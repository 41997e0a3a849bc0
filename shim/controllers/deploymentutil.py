"""Deployment arithmetic and bookkeeping, pure functions over Deployment and ReplicaSet dicts.

Follows `pkg/controller/deployment/util/deployment_util.go`, `pkg/controller/controller_utils.go`
(ComputeHash, replica set orderings) and `k8s.io/apimachinery/pkg/util/intstr` (percent rounding).
"""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from shim.controllers.podutil import parse_time
from shim.machinery.timefmt import format_time

Obj = dict[str, Any]

# annotations and labels
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
POD_TEMPLATE_HASH = "pod-template-hash"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
ANNOTATIONS_NOT_COPIED = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
MAX_REVISION_HISTORY_CHARS = 2000

# condition types and reasons
PROGRESSING, AVAILABLE, REPLICA_FAILURE = "Progressing", "Available", "ReplicaFailure"
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_REPLICA_SET = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

_MAX_INT32 = 2**31 - 1
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand's: no vowels, no look-alikes
_FNV32_OFFSET, _FNV32_PRIME = 2166136261, 16777619


# -- spec helpers --------------------------------------------------------------------------------------------


def replicas(obj: Obj) -> int:
    """`spec.replicas` (defaulted by the API server; 1 when absent, as the defaulting would make it)."""
    value = obj["spec"].get("replicas")
    return 1 if value is None else value


def is_rolling_update(d: Obj) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def has_progress_deadline(d: Obj) -> bool:
    deadline = d["spec"].get("progressDeadlineSeconds")
    return deadline is not None and deadline != _MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    limit = d["spec"].get("revisionHistoryLimit")
    return limit is not None and limit != _MAX_INT32


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
    exact = int(value[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None, desired: int) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas: surge rounds up, unavailable down, and both zero means
    unavailable 1 (the rollout must be able to move)."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _fenceposts(d: Obj) -> tuple[int, int]:
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas(d))


def max_surge(d: Obj) -> int:
    """How many pods above `replicas` a rolling update may run (0 for Recreate)."""
    return _fenceposts(d)[0] if is_rolling_update(d) else 0


def max_unavailable(d: Obj) -> int:
    """How many of `replicas` may be unavailable during a rolling update (0 for Recreate or no replicas)."""
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    return min(_fenceposts(d)[1], replicas(d))


# -- templates and hashes ------------------------------------------------------------------------------------


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The pod-template-hash of a template: FNV-1a 32 over the template (plus the collision count, as kube adds
    it) encoded with kube's safe alphabet. Same shape as kube's (`7d4b9f8c6`); the value hashes the canonical
    JSON rather than Go's struct dump, so it is stable here but not equal to a real cluster's."""
    digest = _fnv32a(orjson.dumps(_semantic(template), option=orjson.OPT_SORT_KEYS), _FNV32_OFFSET)
    if collision_count is not None:
        digest = _fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF) + bytes(4), digest)
    return "".join(_SAFE_ALPHANUMS[b % len(_SAFE_ALPHANUMS)] for b in str(digest).encode())


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """Two pod templates are the same apart from their pod-template-hash label (and empty vs absent fields)."""
    return _semantic(_without_hash(a)) == _semantic(_without_hash(b))


def _without_hash(template: Obj) -> Obj:
    labels = (template.get("metadata") or {}).get("labels") or {}
    if POD_TEMPLATE_HASH not in labels:
        return template
    stripped = copy.copy(template)
    kept = {k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH}
    stripped["metadata"] = {**template["metadata"], "labels": kept}
    return stripped


def _semantic(value: Any) -> Any:
    """Drop nulls and empty maps/lists recursively: Go decodes all of them to the same zero value."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _semantic(v)
            if v is not None and v != {} and v != []:
                out[k] = v
        return out
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _fnv32a(data: bytes, digest: int) -> int:
    for byte in data:
        digest = ((digest ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return digest


# -- replica sets of a deployment ----------------------------------------------------------------------------


def revision(rs: Obj) -> int:
    """The replica set's revision annotation (0 when absent or not a number)."""
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def by_creation(rs: Obj) -> tuple[str, str]:
    """Oldest first, then by name (kube's ReplicaSetsByCreationTimestamp)."""
    return rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]


def by_revision(rs: Obj) -> tuple[int, str, str]:
    """Lowest revision first, then oldest (kube's ReplicaSetsByRevision)."""
    return (revision(rs), *by_creation(rs))


def find_new_replica_set(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest replica set whose template equals the deployment's (ignoring the hash label)."""
    template = d["spec"].get("template") or {}
    for rs in sorted(rss, key=by_creation):
        if equal_ignore_hash(rs["spec"].get("template") or {}, template):
            return rs
    return None


def find_old_replica_sets(rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    """Every replica set of the deployment except the new one."""
    new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    return [rs for rs in rss if rs["metadata"]["uid"] != new_uid]


def active(rss: Sequence[Obj | None]) -> list[Obj]:
    """Replica sets that have (or should have) pods."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """The only active replica set, or the newest one when none is active; None when several are active."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=by_creation, reverse=True)
    running = active([*newest_first, new_rs])
    if len(running) > 1:
        return None
    if running:
        return running[0]
    return new_rs if new_rs is not None else newest_first[0]


def total_replicas(rss: Sequence[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rss if rs is not None)


def available_replicas(rs: Obj) -> int:
    """The available pods a scaling decision may count on: the replica set's report, capped at its size.

    Right after a scale-down its status still counts the pods being deleted; kube reads the raw count and can
    then scale the old replica sets down once more than maxUnavailable allows when events interleave."""
    return min((rs.get("status") or {}).get("availableReplicas", 0), replicas(rs))


def total_status(rss: Sequence[Obj | None], field: str) -> int:
    """Sum of one status counter (replicas, readyReplicas, availableReplicas) over the replica sets."""
    return sum((rs.get("status") or {}).get(field, 0) for rs in rss if rs is not None)


# -- annotations ---------------------------------------------------------------------------------------------


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the deployment's annotations, raise the revision to `new_revision` (remembering the previous one
    in revision-history: a rollback reuses an old replica set), and on creation set the replica annotations.
    True when anything changed (`rs` is modified in place)."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in (d["metadata"].get("annotations") or {}).items():
        if key not in ANNOTATIONS_NOT_COPIED and annotations.get(key) != value:
            annotations[key] = value
            changed = True
    old_text = annotations.get(REVISION)
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return False
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_text:
            _append_revision_history(annotations, old_text)
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def _append_revision_history(annotations: dict[str, str], old_revision: str) -> None:
    history = annotations.get(REVISION_HISTORY, "")
    if not history:
        annotations[REVISION_HISTORY] = old_revision
        return
    revisions = history.split(",")
    length = len(history) + len(old_revision) + 1
    while length > MAX_REVISION_HISTORY_CHARS and revisions:  # forget the oldest to stay within the limit
        length -= len(revisions.pop(0)) + 1
    if length <= MAX_REVISION_HISTORY_CHARS:
        annotations[REVISION_HISTORY] = ",".join([*revisions, old_revision])


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    """Record the deployment's replicas and replicas+surge on a replica set; True when they changed."""
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    annotations = rs["metadata"].get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(MAX_REPLICAS) != str(maximum)


def desired_replicas_annotation(rs: Obj) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS)


def _int_annotation(rs: Obj, key: str) -> int | None:
    try:
        return int((rs["metadata"].get("annotations") or {})[key])
    except (KeyError, ValueError):
        return None


# -- scaling arithmetic --------------------------------------------------------------------------------------


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """How big the new replica set may be now: Recreate goes straight to `replicas`; a rolling update grows
    it while the total stays within replicas + maxSurge."""
    if not is_rolling_update(d):
        return replicas(d)
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), replicas(d), True)
    current = total_replicas(all_rss)
    ceiling = replicas(d) + surge
    if current >= ceiling:
        return replicas(new_rs)
    return replicas(new_rs) + min(ceiling - current, replicas(d) - replicas(new_rs))


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The new replica set has all the deployment's replicas, knows it, and they are all available."""
    if rs is None:
        return False
    return (
        replicas(rs) == replicas(d)
        and desired_replicas_annotation(rs) == replicas(d)
        and (rs.get("status") or {}).get("availableReplicas", 0) == replicas(d)
    )


def proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    """This replica set's share of `to_add` replicas when a deployment is scaled mid-rollout (kube's
    GetProportion): proportional to its size, never past what is still left to add or remove."""
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _replica_set_fraction(rs: Obj, d: Obj) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = (d.get("status") or {}).get("replicas", 0)
    if annotated == 0:
        return 0
    return _round_half_away(replicas(rs) * deployment_replicas / annotated) - replicas(rs)


def _round_half_away(value: float) -> int:
    """Go's math.Round."""
    return int(math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1))


# -- conditions and status -----------------------------------------------------------------------------------


def new_condition(type_: str, status: str, reason: str, message: str, at: datetime) -> Obj:
    stamp = format_time(at)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Obj, type_: str) -> Obj | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == type_:
            return condition
    return None


def set_condition(status: Obj, condition: Obj) -> None:
    """Replace the condition of that type, unless status and reason are unchanged; a condition whose status
    did not change keeps its lastTransitionTime."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"]:
        if current.get("reason") == condition["reason"]:
            return
        condition["lastTransitionTime"] = current.get("lastTransitionTime")
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Obj, type_: str) -> None:
    kept = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj, at: datetime) -> Obj:
    """The deployment's status from its replica sets; zero counters are omitted, as kube's JSON omits them."""
    available = total_status(all_rss, "availableReplicas")
    counters = {
        "observedGeneration": d["metadata"].get("generation", 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": total_status([new_rs], "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total_replicas(all_rss) - available, 0),
    }
    status: Obj = {k: v for k, v in counters.items() if v}
    previous = d.get("status") or {}
    if previous.get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]
    if previous.get("conditions"):
        status["conditions"] = [dict(c) for c in previous["conditions"]]
    if available >= replicas(d) - max_unavailable(d):
        reason, message = MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability."
        set_condition(status, new_condition(AVAILABLE, "True", reason, message, at))
    else:
        reason, message = MINIMUM_REPLICAS_UNAVAILABLE, "Deployment does not have minimum availability."
        set_condition(status, new_condition(AVAILABLE, "False", reason, message, at))
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    """Every desired replica is updated and available, no old pods remain, and the spec was observed."""
    want = replicas(d)
    return (
        status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    """Pods were updated, old ones went away, or more became ready or available since the last status."""
    old = d.get("status") or {}

    def get(s: Obj, f: str) -> int:
        return s.get(f, 0)

    return (
        get(status, "updatedReplicas") > get(old, "updatedReplicas")
        or get(status, "replicas") - get(status, "updatedReplicas") < get(old, "replicas") - get(old, "updatedReplicas")
        or get(status, "readyReplicas") > get(old, "readyReplicas")
        or get(status, "availableReplicas") > get(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, status: Obj, at: datetime) -> bool:
    """No progress for progressDeadlineSeconds since the Progressing condition was last updated."""
    if not has_progress_deadline(d):
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    since = parse_time(condition.get("lastUpdateTime"))
    if since is None:
        return False
    return (at - since).total_seconds() > d["spec"]["progressDeadlineSeconds"]


def same_status(a: Obj, b: Obj) -> bool:
    """Equal deployment statuses, absent and zero counters alike."""
    fields = set(a) | set(b)
    return all((a.get(f) or None) == (b.get(f) or None) for f in fields)
