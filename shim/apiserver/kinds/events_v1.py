"""events.k8s.io/v1 Events: stored as core/v1 Events, with the strict validation newer clients get
(`pkg/registry/events`, `pkg/apis/events/v1` conversion).
"""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.causes import Cause, invalid, required
from shim.apiserver.kinds.core import EVENT_COLUMNS, REFERENCE_FIELDS, event_cells, event_fields, validate_legacy_event
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE
from shim.apiserver.printers import Cells, object_meta
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import Conversion, Strategy
from shim.apiserver.selectable_fields import NAMESPACED, SelectableFields, not_supported

Obj = dict[str, Any]


# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


def events_v1_cells(event: Printed, now_us: int) -> Cells:
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


class EventsV1Strategy(Strategy):
    """events.k8s.io/v1 Events: the strict validation newer clients get (field paths are core's, as kube's)."""

    short_names = ("ev",)
    table_columns = EVENT_COLUMNS
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
