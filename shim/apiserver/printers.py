"""What every kind's Table printer shares (kube's `pkg/printers`): ages, label formats, column definitions.

Each kind's printer lives next to its strategy in `shim/apiserver/kinds/`, as kube-apiserver's
`pkg/printers/internalversion/printers.go` functions do per kind. The server always prints the wide form
(kubectl hides `priority: 1` columns itself). Every printer takes the object as stored (a plain v1 JSON dict)
and `now` in epoch microseconds, and returns the row's cells.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from shim.machinery.selectors import SelectorError, label_selector_from_object
from shim.machinery.timefmt import format_time

Obj = Mapping[str, Any]
Cells = list[Any]
Printer = Callable[[Obj, int], Cells]
Column = dict[str, Any]

_US = 1_000_000


# -- time ----------------------------------------------------------------------------------------------------


def human_duration(us: int) -> str:
    """`duration.HumanDuration`: a ~2-3 significant figure age (`5s`, `3m2s`, `2d3h`, `<invalid>`)."""
    seconds = us // _US if us >= 0 else -(-us // _US)  # Go truncates toward zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


@lru_cache(maxsize=65536)
def timestamp_us(text: str) -> int | None:
    """An RFC3339 (or MicroTime) timestamp as epoch microseconds; None for the zero/absent time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.year == 1:  # Go's zero time, serialized
        return None
    return epoch_us(moment)


def epoch_us(moment: datetime) -> int:
    """A datetime (naive means UTC) as epoch microseconds."""
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * _US)


def since(text: Any, now_us: int) -> str:
    """`translateTimestampSince`: the age of a timestamp, `<unknown>` when unset."""
    us = timestamp_us(text) if isinstance(text, str) and text else None
    return "<unknown>" if us is None else human_duration(now_us - us)


def age(obj: Obj, now_us: int) -> str:
    """The AGE cell: time since the object's creationTimestamp."""
    return since(object_meta(obj).get("creationTimestamp"), now_us)


def default_cells(obj: Obj, now_us: int) -> Cells:
    """kube's default TableConvertor: the name and the creation time as RFC3339 UTC."""
    created = timestamp_us(object_meta(obj).get("creationTimestamp") or "")
    if created is None:
        return [object_name(obj), "0001-01-01T00:00:00Z"]
    return [object_name(obj), format_time(datetime.fromtimestamp(created // _US, UTC))]


def no_row_conditions(obj: Obj) -> list[dict[str, str]] | None:
    """Rows of most kinds carry no `conditions`."""
    return None


# -- shared formatting ---------------------------------------------------------------------------------------


def format_labels(labels: Mapping[str, str] | None) -> str:
    """`labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """`metav1.FormatLabelSelector`: the selector string, `<none>` when it selects everything or nothing."""
    try:
        text = str(label_selector_from_object(selector))
    except SelectorError:
        return "<error>"
    return text or "<none>"


def container_cells(workload_spec: Obj) -> tuple[str, str]:
    """`layoutContainerCells` over a workload's pod template: names and images, comma-joined."""
    pod_spec = (workload_spec.get("template") or EMPTY).get("spec") or EMPTY
    containers = pod_spec.get("containers") or ()
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def object_meta(obj: Obj) -> Obj:
    """The object's metadata (empty when absent)."""
    return obj.get("metadata") or EMPTY


def object_name(obj: Obj) -> str:
    """The object's metadata.name ("" when absent)."""
    return object_meta(obj).get("name", "")


EMPTY: Mapping[str, Any] = {}


# -- column definitions --------------------------------------------------------------------------------------


def column(name: str, description: str, priority: int = 0, *, type: str = "string", format: str = "") -> Column:
    """One Table column definition as kube sends it; the description is the API type's field doc."""
    return {"name": name, "type": type, "format": format, "description": description, "priority": priority}


NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
#: metadata.creationTimestamp's doc: the AGE column's and the default convertor's Created At
AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
NAME_COLUMN = column("Name", NAME_DOC, format="name")
AGE_COLUMN = column("Age", AGE_DOC)
#: kube's default TableConvertor columns, for kinds without a printer
DEFAULT_COLUMNS = [NAME_COLUMN, column("Created At", AGE_DOC, type="date")]
#: the wide columns of every kind with a pod template (their cells: `container_cells`)
TEMPLATE_COLUMNS = [
    column("Containers", "Names of each container in the template.", 1),
    column("Images", "Images referenced by each container in the template.", 1),
]
