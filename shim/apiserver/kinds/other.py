"""The smaller groups: coordination.k8s.io Lease, events.k8s.io Event, scheduling.k8s.io PriorityClass,
and the policy/v1 Eviction a `pods/eviction` request carries.
"""

from __future__ import annotations

from typing import Any

from shim.apiserver import errors
from shim.apiserver.kinds.causes import Cause, forbidden, invalid, required, unsupported
from shim.apiserver.kinds.core import REFERENCE_FIELDS, event_cells, event_fields, validate_legacy_event
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE, NEGATIVE, is_qualified_name
from shim.apiserver.printers import EMPTY, Cells, age, column_definitions, object_meta, object_name
from shim.apiserver.registry import Conversion, Strategy
from shim.apiserver.selectable_fields import NAMESPACED, SelectableFields, not_supported

# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


def events_v1_cells(event: Obj, now_us: int) -> Cells:
    """events.k8s.io/v1 shares the core printer; its fields are renamed (regarding, note, deprecated*)."""
    return event_cells(
        {
            "metadata": object_meta(event),
            "involvedObject": event.get("regarding"),
            "message": event.get("note"),
            "source": event.get("deprecatedSource"),
            "firstTimestamp": event.get("deprecatedFirstTimestamp"),
            "lastTimestamp": event.get("deprecatedLastTimestamp"),
            "count": event.get("deprecatedCount"),
            "eventTime": event.get("eventTime"),
            "series": event.get("series"),
            "type": event.get("type"),
            "reason": event.get("reason"),
            "reportingController": event.get("reportingController"),
            "reportingInstance": event.get("reportingInstance"),
        },
        now_us,
    )


def lease_cells(lease: Obj, now_us: int) -> Cells:
    return [object_name(lease), (lease.get("spec") or EMPTY).get("holderIdentity") or "", age(lease, now_us)]


def priorityclass_cells(pc: Obj, now_us: int) -> Cells:
    return [
        object_name(pc),
        pc.get("value", 0),
        bool(pc.get("globalDefault")),
        age(pc, now_us),
        pc.get("preemptionPolicy", ""),
    ]


Obj = dict[str, Any]

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = (
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "system-node-critical"},
        "value": 2_000_001_000,
        "description": "Used for system critical pods that must not be moved from their current node.",
        "preemptionPolicy": "PreemptLowerPriority",
    },
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "system-cluster-critical"},
        "value": 2_000_000_000,
        "description": "Used for system critical pods that must run in the cluster, but can be moved to another "
        "node if necessary.",
        "preemptionPolicy": "PreemptLowerPriority",
    },
)
_PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")
_PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")


class LeaseStrategy(Strategy):
    """coordination.k8s.io/v1 Leases (node heartbeats, leader election)."""

    table_columns = column_definitions("coordination.k8s.io/leases")
    printer = staticmethod(lease_cells)

    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        if obj.get("spec") is None:
            obj["spec"] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            causes.append(invalid("spec.leaseTransitions", transitions, NEGATIVE))
        strategy = spec.get("strategy")
        if strategy is not None:
            if "/" not in strategy:
                if strategy != "OldestEmulationVersion":
                    causes.append(unsupported("spec.strategy.strategy", strategy, ("OldestEmulationVersion",)))
            else:
                causes.extend(invalid("spec.strategy.strategy", strategy, m) for m in is_qualified_name(strategy))
        if spec.get("preferredHolder") and not strategy:
            causes.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
        return causes


class EventsV1Strategy(Strategy):
    """events.k8s.io/v1 Events: the strict validation newer clients get (field paths are core's, as kube's)."""

    short_names = ("ev",)
    table_columns = column_definitions("events.k8s.io/events")
    printer = staticmethod(events_v1_cells)
    selectable_fields = SelectableFields(
        {**NAMESPACED, **event_fields("regarding", "deprecatedSource")},
        {label: label for label in ("metadata.name", "metadata.namespace", "reason", "type")}
        | {"reportingController": "reportingComponent"}
        | {f"regarding.{f}": f"involvedObject.{f}" for f in REFERENCE_FIELDS},
        not_supported,
    )

    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        # zero-valued fields Go's encoder still writes
        obj.setdefault("eventTime", None)
        for key in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp"):
            obj.setdefault(key, None)
        for key in ("regarding", "deprecatedSource"):
            if obj.get(key) is None:
                obj[key] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        causes = _legacy_checks(obj)
        causes.extend(_validate_series(obj))
        if not obj.get("eventTime"):
            causes.append(required("eventTime"))
        kind = obj.get("type") or ""
        if kind not in ("Normal", "Warning"):
            causes.append(invalid("type", "", f"has invalid value: {kind}"))
        for key, path in (("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp")):
            if obj.get(key):
                causes.append(invalid(path, "", "needs to be unset"))
        if obj.get("deprecatedCount"):
            causes.append(invalid("count", "", "needs to be unset"))
        if any((obj.get("deprecatedSource") or {}).values()):
            causes.append(invalid("source", "", "needs to be unset"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = _legacy_checks(new)
        if new.get("series") != old.get("series"):
            causes.extend(_validate_series(new))
        immutable = (
            ("regarding", "involvedObject"),
            ("reason", "reason"),
            ("note", "message"),
            ("deprecatedSource", "source"),
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"),
            ("type", "type"),
            ("eventTime", "eventTime"),
            ("action", "action"),
            ("related", "related"),
            ("reportingController", "reportingController"),
            ("reportingInstance", "reportingInstance"),
        )
        for key, path in immutable:
            if new.get(key) != old.get(key):
                causes.append(invalid(path, new.get(key), FIELD_IMMUTABLE))
        return causes


class PriorityClassStrategy(Strategy):
    """scheduling.k8s.io/v1 PriorityClasses: cluster-scoped; value and preemptionPolicy fixed once set."""

    short_names = ("pc",)
    table_columns = column_definitions("scheduling.k8s.io/priorityclasses")
    printer = staticmethod(priorityclass_cells)

    def default(self, obj: Obj) -> None:
        # value is not omitempty in Go, so an absent one reads back as 0
        obj.setdefault("value", 0)
        if not obj.get("preemptionPolicy"):
            obj["preemptionPolicy"] = "PreemptLowerPriority"

    def validate(self, obj: Obj) -> list[Cause]:
        name = (obj.get("metadata") or {}).get("name", "")
        value = obj.get("value", 0)
        causes: list[Cause] = []
        if name.startswith("system-"):
            problem = _system_class_problem(name, value, bool(obj.get("globalDefault")))
            if problem:
                causes.append(
                    forbidden(
                        "metadata.name",
                        "priority class names with 'system-' prefix are reserved "
                        f"for system use only. error: {problem}",
                    )
                )
        elif value > HIGHEST_USER_PRIORITY:
            causes.append(
                forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}")
            )
        policy = obj.get("preemptionPolicy")
        if policy is not None and policy not in _PREEMPTION_POLICIES:
            causes.append(
                required("preemptionPolicy")
                if not policy
                else unsupported("preemptionPolicy", policy, _PREEMPTION_POLICIES)
            )
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("value", 0) != old.get("value", 0):
            causes.append(forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(invalid("preemptionPolicy", new.get("preemptionPolicy"), FIELD_IMMUTABLE))
        return causes


def validate_eviction(eviction: Obj, pod_name: str) -> None:
    """A `pods/<name>/eviction` body: its name must be the pod's, its deleteOptions valid.

    Raises 400 (name mismatch) or 422 (bad deleteOptions) as kube does.
    """
    name = (eviction.get("metadata") or {}).get("name")
    if name and name != pod_name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = eviction.get("deleteOptions") or {}
    causes: list[Cause] = []
    if options.get("orphanDependents") is not None and options.get("propagationPolicy") is not None:
        causes.append(
            invalid(
                "propagationPolicy",
                options["propagationPolicy"],
                "orphanDependents and deletionPropagation cannot be both set",
            )
        )
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in _PROPAGATION_POLICIES:
        causes.append(unsupported("propagationPolicy", policy, _PROPAGATION_POLICIES))
    for i, value in enumerate(options.get("dryRun") or ()):
        if value != "All":
            causes.append(unsupported(f"dryRun[{i}]", value, ("All",)))
    if causes:
        raise errors.invalid("policy", "Eviction", pod_name, causes)


def _system_class_problem(name: str, value: int, global_default: bool) -> str:
    for known in SYSTEM_PRIORITY_CLASSES:
        if known["metadata"]["name"] == name:
            if known["value"] != value:
                return f"value of {name} PriorityClass must be {known['value']}"
            if global_default:
                return f"globalDefault of {name} PriorityClass must be false"
            return ""
    return f"{name} is not a known system priority class"


def _legacy_checks(obj: Obj) -> list[Cause]:
    return validate_legacy_event(
        namespace=(obj.get("metadata") or {}).get("namespace", ""),
        event_time=obj.get("eventTime"),
        involved_namespace=(obj.get("regarding") or {}).get("namespace", ""),
        controller=obj.get("reportingController") or "",
        instance=obj.get("reportingInstance") or "",
        action=obj.get("action") or "",
        reason=obj.get("reason") or "",
        message=obj.get("note") or "",
    )


def _validate_series(obj: Obj) -> list[Cause]:
    series = obj.get("series")
    if series is None:
        return []
    causes = []
    if series.get("count", 0) < 2:
        causes.append(invalid("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        causes.append(required("series.lastObservedTime"))
    return causes


class EventsV1Conversion(Conversion):
    """events.k8s.io/v1 Events are stored as core/v1 Events (kube's pkg/apis/events/v1 conversion): one set
    of events, read and written through either API."""

    # events.k8s.io/v1 name -> core/v1 name, for the fields that differ
    _RENAMED = (
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("reportingController", "reportingComponent"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
    )

    def to_storage(self, obj: Obj) -> Obj:
        core = {k: v for k, v in obj.items() if k not in _V1_NAMES}
        for new, old in self._RENAMED:
            if new in obj:
                core[old] = obj[new]
        core["apiVersion"], core["kind"] = "v1", "Event"
        return core

    def from_storage(self, obj: Obj) -> Obj:
        v1 = {k: v for k, v in obj.items() if k not in _CORE_NAMES}
        for new, old in self._RENAMED:
            if old in obj:
                v1[new] = obj[old]
        v1["apiVersion"], v1["kind"] = "events.k8s.io/v1", "Event"
        return v1


_V1_NAMES = frozenset(new for new, _ in EventsV1Conversion._RENAMED)
_CORE_NAMES = frozenset(old for _, old in EventsV1Conversion._RENAMED)
