"""apps/v1 ControllerRevisions: the immutable snapshots DaemonSets and StatefulSets keep as their history.

Follows `pkg/registry/apps/controllerrevision/strategy.go`, `pkg/apis/apps/validation/validation.go`
(ValidateControllerRevisionCreate/Update: data is mandatory and fixed, revision not negative) and
`printControllerRevision` in `pkg/printers/internalversion/printers.go`.
"""

from __future__ import annotations

from typing import Any

import orjson

from shim.apiserver.kinds.causes import Cause, GoValue, invalid, required
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE
from shim.apiserver.kinds.pod_validation import nonnegative
from shim.apiserver.printers import AGE_COLUMN, NAME_COLUMN, Cells, Column, age, column, object_meta, object_name
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import Strategy

Obj = dict[str, Any]

CONTROLLER_REVISION_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Controller", "Controller of the object"),
    column("Revision", "Revision indicates the revision of the state represented by Data."),
    AGE_COLUMN,
]


def controller_revision_cells(revision: Printed, now_us: int) -> Cells:
    """printControllerRevision: the controller as `kind.group/name` (kubectl's resource name), or `<none>`."""
    controller = "<none>"
    for ref in object_meta(revision).get("ownerReferences") or ():
        if ref.get("controller"):
            group = str(ref.get("apiVersion", "")).rpartition("/")[0]
            kind = str(ref.get("kind", "")).lower()
            controller = f"{kind}.{group}/{ref.get('name', '')}" if group else f"{kind}/{ref.get('name', '')}"
            break
    return [object_name(revision), controller, revision.get("revision", 0), age(revision, now_us)]


class ControllerRevisionStrategy(Strategy):
    """ControllerRevisions: data written once; no status, no generation."""

    table_columns = CONTROLLER_REVISION_COLUMNS
    printer = staticmethod(controller_revision_cells)

    def validate(self, obj: Obj) -> list[Cause]:
        causes = [] if obj.get("data") is not None else [required("data", "data is mandatory")]
        causes.extend(nonnegative(obj.get("revision", 0), "revision"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if new.get("data") != old.get("data"):
            causes.append(invalid("data", _go_raw_extension(new.get("data")), FIELD_IMMUTABLE))
        return causes


def _go_raw_extension(data: Any) -> GoValue:
    """`%#v` of a `runtime.RawExtension` holding `data` as JSON."""
    if data is None:
        return GoValue("runtime.RawExtension{Raw:[]uint8(nil), Object:runtime.Object(nil)}")
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return GoValue(
        "runtime.RawExtension{Raw:[]uint8{" + ", ".join(f"0x{b:x}" for b in raw) + "}, Object:runtime.Object(nil)}"
    )
