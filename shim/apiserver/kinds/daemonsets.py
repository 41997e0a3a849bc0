"""apps/v1 DaemonSets: defaults, the template generation, validation with kube's messages, and the Table printer.

Follows `pkg/apis/apps/v1/defaults.go` (SetDefaults_DaemonSet), `pkg/registry/apps/daemonset/strategy.go`
(status reset on create, generation and template generation bumps, selector fixed once set),
`pkg/apis/apps/validation/validation.go` (ValidateDaemonSet, ValidateDaemonSetUpdateStrategy,
ValidateDaemonSetStatusUpdate) and `printDaemonSet` in `pkg/printers/internalversion/printers.go`.

kube keeps the template generation in the internal `spec.templateGeneration`, which apps/v1 carries as the
`deprecated.daemonset.template.generation` annotation; the controller labels pods with it.
"""

from __future__ import annotations

from typing import Any

from shim.apiserver.kinds.apps import (
    default_pod_template,
    default_update_strategy,
    int_or_percent_value,
    selector_unchanged,
    validate_int_or_percent,
)
from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    go_int_or_string,
    go_label_selector,
    go_string_map,
    invalid,
    required,
    unsupported,
)
from shim.apiserver.kinds.meta import validate_label_selector
from shim.apiserver.kinds.pod_validation import nonnegative, validate_pod_template
from shim.apiserver.printers import (
    AGE_COLUMN,
    EMPTY,
    NAME_COLUMN,
    TEMPLATE_COLUMNS,
    Cells,
    Column,
    age,
    column,
    container_cells,
    format_label_selector,
    format_labels,
    object_name,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import STATUS, Strategy
from shim.machinery.selectors import SelectorError, label_selector_from_object

Obj = dict[str, Any]

TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
_STRATEGIES = ("OnDelete", "RollingUpdate")  # sets.List order, as kube's NotSupported message lists them
_STATUS_COUNTERS = (
    "currentNumberScheduled",
    "numberMisscheduled",
    "desiredNumberScheduled",
    "numberReady",
    "observedGeneration",
    "updatedNumberScheduled",
    "numberAvailable",
    "numberUnavailable",
    "collisionCount",
)
# apps/v1 DaemonSetStatus fields without omitempty: a new DaemonSet shows them as 0
_REQUIRED_STATUS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")

# -- Table printer --------------------------------------------------------------------------------------------

_DAEMON_DOC = "More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
DAEMONSET_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column(
        "Desired",
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the "
        "daemon pod). " + _DAEMON_DOC,
        type="integer",
    ),
    column(
        "Current",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. "
        + _DAEMON_DOC,
        type="integer",
    ),
    column(
        "Ready",
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running with a Ready Condition.",
        type="integer",
    ),
    column("Up-to-date", "The total number of nodes that are running updated daemon pod", type="integer"),
    column(
        "Available",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod "
        "running and available (ready for at least spec.minReadySeconds)",
        type="integer",
    ),
    column(
        "Node Selector",
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a "
        "node's labels for the pod to be scheduled on that node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
    ),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
    column(
        "Selector",
        "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It "
        "must match the pod template's labels. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        1,
    ),
]


def daemonset_cells(ds: Printed, now_us: int) -> Cells:
    """printDaemonSet: the node counts of the status, the template's node selector, containers and images."""
    spec = ds.get("spec") or EMPTY
    status = ds.get("status") or EMPTY
    names, images = container_cells(spec)
    pod_spec = (spec.get("template") or EMPTY).get("spec") or EMPTY
    return [
        object_name(ds),
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        format_labels(pod_spec.get("nodeSelector")),
        age(ds, now_us),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


# -- the strategy ---------------------------------------------------------------------------------------------


def template_generation(ds: Obj) -> int:
    """The DaemonSet's template generation (its annotation; 0 when absent or not a number, as kube's conversion)."""
    text = ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION, "0")
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


class DaemonSetStrategy(Strategy):
    """DaemonSets: RollingUpdate with maxUnavailable 1 by default, 10 revisions; selector fixed once set."""

    short_names = ("ds",)
    categories = ("all",)
    subresources = (STATUS,)
    table_columns = DAEMONSET_COLUMNS
    printer = staticmethod(daemonset_cells)
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_DaemonSet, then the pod template's defaults."""
        spec = obj.setdefault("spec", {})
        default_update_strategy(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
        if spec.get("revisionHistoryLimit") is None:
            spec["revisionHistoryLimit"] = 10
        default_pod_template(spec, "DaemonSet")

    def prepare_for_create(self, obj: Obj) -> None:
        """Status starts at zero counts and the template at generation 1."""
        obj["status"] = dict.fromkeys(_REQUIRED_STATUS, 0)
        _set_template_generation(obj, 1)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """The template generation is the server's: kept, and bumped when the template changes."""
        self.default(new)  # compare templates as they will be stored
        generation = template_generation(old)
        if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
            generation += 1
        _set_template_generation(new, generation)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        status = new.setdefault("status", {})
        for key in _REQUIRED_STATUS:
            status.setdefault(key, 0)

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_spec(obj.get("spec") or {})

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateDaemonSetUpdate + selector immutability, and the status rules (no-ops when unchanged)."""
        causes = self.validate(new)
        causes.extend(selector_unchanged(new, old))
        status, old_status = new.get("status") or {}, old.get("status") or {}
        for key in _STATUS_COUNTERS:
            causes.extend(nonnegative(status.get(key, 0), f"status.{key}"))
        if status.get("collisionCount", 0) < old_status.get("collisionCount", 0):
            causes.append(invalid("status.collisionCount", status.get("collisionCount", 0), "cannot be decremented"))
        return causes


def _set_template_generation(obj: Obj, generation: int) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if annotations is None:
        annotations = meta["annotations"] = {}
    annotations[TEMPLATE_GENERATION_ANNOTATION] = str(generation)


def _validate_spec(spec: Obj) -> list[Cause]:
    """ValidateDaemonSetSpec."""
    causes: list[Cause] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels")
    if selector is None:
        causes.append(required("spec.selector"))
    else:
        causes.extend(validate_label_selector(selector, "spec.selector"))
        try:
            parsed = label_selector_from_object(selector)
        except SelectorError:
            parsed = None
        if parsed is not None and not parsed.matches(labels or {}):
            causes.append(
                invalid(
                    "spec.template.metadata.labels",
                    go_string_map(labels),
                    "`selector` does not match template `labels`",
                )
            )
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(
                invalid("spec.selector", go_label_selector(selector), "empty selector is invalid for daemonset")
            )
    causes.extend(validate_pod_template(template, "spec.template"))
    pod_spec = template.get("spec") or {}
    restart_policy = pod_spec.get("restartPolicy", "")
    if restart_policy != "Always":
        causes.append(unsupported("spec.template.spec.restartPolicy", restart_policy, ("Always",)))
    deadline = pod_spec.get("activeDeadlineSeconds")
    if deadline is not None:
        causes.append(
            invalid(
                "spec.template.spec.activeDeadlineSeconds",
                deadline,
                "activeDeadlineSeconds in DaemonSet is not Supported",
            )
        )
    causes.extend(nonnegative(spec.get("minReadySeconds", 0), "spec.minReadySeconds"))
    causes.extend(_validate_update_strategy(spec.get("updateStrategy") or {}))
    causes.extend(nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
    return causes


def _validate_update_strategy(strategy: Obj) -> list[Cause]:
    """ValidateDaemonSetUpdateStrategy and ValidateRollingUpdateDaemonSet."""
    kind = strategy.get("type", "")
    path = "spec.updateStrategy"
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        shown = GoValue(
            f'apps.DaemonSetUpdateStrategy{{Type:"{kind}", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}'
        )
        return [unsupported(path, shown, _STRATEGIES)]
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        return [required(path + ".rollingUpdate")]
    path += ".rollingUpdate"
    causes: list[Cause] = []
    values = {key: rolling.get(key, 0) for key in ("maxUnavailable", "maxSurge")}
    for key, value in values.items():
        causes.extend(validate_int_or_percent(value, f"{path}.{key}"))
    for key, value in values.items():
        if isinstance(value, str) and value.endswith("%") and int_or_percent_value(value) > 100:
            causes.append(invalid(f"{path}.{key}", go_int_or_string(value), "must not be greater than 100%"))
    has_unavailable = int_or_percent_value(values["maxUnavailable"]) != 0
    has_surge = int_or_percent_value(values["maxSurge"]) != 0
    if has_unavailable and has_surge:
        causes.append(
            invalid(
                path + ".maxSurge",
                go_int_or_string(values["maxSurge"]),
                "may not be set when maxUnavailable is non-zero",
            )
        )
    elif not has_unavailable and not has_surge:
        causes.append(required(path + ".maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return causes
