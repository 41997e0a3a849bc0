"""batch/v1 Jobs: defaults, the generated selector, validation with kube's messages, and the Table printer.

Follows `pkg/apis/batch/v1/defaults.go` (SetDefaults_Job), `pkg/registry/batch/job/strategy.go` (the selector
and `controller-uid`/`job-name` labels generated on create, generation bumps, DefaultGarbageCollectionPolicy
OrphanDependents for batch/v1), `pkg/apis/batch/validation/validation.go` (ValidateJob, ValidateJobSpecUpdate)
and `printJob` in `pkg/printers/internalversion/printers.go`.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from shim.apiserver.errors import cause
from shim.apiserver.kinds.apps import default_pod_template
from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    duplicate,
    go_label_selector,
    go_string_map,
    invalid,
    required,
    too_long,
    unsupported,
)
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE, is_dns1123_label, is_qualified_name, validate_label_selector
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
    human_duration,
    object_meta,
    object_name,
    since,
    timestamp_us,
)
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import STATUS, Strategy
from shim.apiserver.selectable_fields import NAMESPACED, selectable
from shim.machinery.cron import ScheduleError, load_zone, parse_standard
from shim.machinery.gofmt import go_quote
from shim.machinery.selectors import SelectorError, label_selector_from_object

Obj = dict[str, Any]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
MAX_INT32 = 2**31 - 1
_MAX_PARALLELISM_INDEXED = 100_000
_MAX_FAILED_INDEXES = 100_000
_MAX_RULES = 20
_MAX_EXIT_CODES = 255
_MAX_CONDITION_PATTERNS = 20
_MAX_SUCCEEDED_INDEXES_LENGTH = 64 * 1024
_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")  # sets.List order, as kube's messages list them
_OPERATORS = ("In", "NotIn")
_CONDITION_STATUSES = ("False", "True", "Unknown")
_REPLACEMENT_POLICIES = ("Failed", "TerminatingOrFailed")
# fields of a suspended Job that never started which its template may still change (kube's
# AllowMutableSchedulingDirectives): the scheduler's say over where its pods go
_SCHEDULING_SPEC_FIELDS = ("nodeSelector", "tolerations", "affinity", "schedulingGates")
_SCHEDULING_META_FIELDS = ("labels", "annotations")

# spec fields fixed once the Job exists (ValidateJobSpecUpdate), with the Go type kube prints their values as
_IMMUTABLE_SPEC_FIELDS = {
    "completionMode": "",
    "podFailurePolicy": "batch.PodFailurePolicy",
    "backoffLimitPerIndex": "",
    "managedBy": "",
    "successPolicy": "batch.SuccessPolicy",
}

# -- Table printer --------------------------------------------------------------------------------------------

# JobSpec.selector's doc: the wide Selector column of Jobs and CronJobs
_JOB_SELECTOR_COLUMN = column(
    "Selector",
    (
        "A label query over pods that should match the pod count. Normally, the system sets this field "
        "for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors"
    ),
    1,
)

JOB_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Status", "Status of the job."),
    column(
        "Completions",
        (
            "The number of pods which reached phase Succeeded. The value increases monotonically for a given "
            "spec. However, it may decrease in reaction to scale down of elastic indexed jobs."
        ),
    ),
    column("Duration", "Time required to complete the job."),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
    _JOB_SELECTOR_COLUMN,
]


def job_cells(job: Printed, now_us: int) -> Cells:
    """printJob: what the job came to, how much of it is done, and how long it took or has taken."""
    spec = job.get("spec") or EMPTY
    status = job.get("status") or EMPTY
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start = timestamp_us(status.get("startTime") or "")
    end = timestamp_us(status.get("completionTime") or "")
    if start is None:
        duration = ""
    elif end is None:
        duration = since(status["startTime"], now_us)
    else:
        duration = human_duration(end - start)
    names, images = container_cells(spec)
    return [
        object_name(job),
        _printed_status(job),
        completions,
        duration,
        age(job, now_us),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _printed_status(job: Printed) -> str:
    true = {c.get("type") for c in (job.get("status") or EMPTY).get("conditions") or () if c.get("status") == "True"}
    if "Complete" in true:
        return "Complete"
    if "Failed" in true:
        return "Failed"
    if object_meta(job).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if kind in true:
            return kind
    return "Running"


# -- the strategy ---------------------------------------------------------------------------------------------


class JobStrategy(Strategy):
    """Jobs: pods run to completion; the selector is generated from the job's uid unless manualSelector."""

    categories = ("all",)
    subresources = (STATUS,)
    table_columns = JOB_COLUMNS
    printer = staticmethod(job_cells)
    # pkg/apis/batch/v1/conversion.go: metadata.name, metadata.namespace and status.successful
    selectable_fields = selectable(
        {**NAMESPACED, "status.successful": lambda job: str((job.get("status") or {}).get("succeeded") or 0)}
    )
    tracks_generation = True
    # batch/v1 keeps a deleted Job's pods unless the client asks otherwise (kubectl asks for Background)
    default_propagation_policy = "Orphan"

    def default(self, obj: Obj) -> None:
        """SetDefaults_Job, then the pod template's defaults."""
        spec = obj.setdefault("spec", {})
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        if spec.get("parallelism") is None:
            spec["parallelism"] = 1
        if spec.get("backoffLimit") is None:
            spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
        if spec.get("completionMode") is None:
            spec["completionMode"] = "NonIndexed"
        if spec.get("suspend") is None:
            spec["suspend"] = False
        policy = spec.get("podFailurePolicy")
        if spec.get("podReplacementPolicy") is None:
            spec["podReplacementPolicy"] = "Failed" if policy is not None else "TerminatingOrFailed"
        for rule in (policy or {}).get("rules") or ():
            for pattern in rule.get("onPodConditions") or ():
                if not pattern.get("status"):
                    pattern["status"] = "True"
        if spec.get("manualSelector") is None:
            spec["manualSelector"] = False
        default_pod_template(spec, "Job")
        _label_like_template(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        """Generate the selector and its labels (the uid is known by now), reset status."""
        if not obj["spec"].get("manualSelector"):
            _generate_selector(obj)
        _label_like_template(obj)
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        """ValidateJob: the generated selector's labels, the spec, and room for indexed hostnames."""
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        causes = _validate_generated_selector(meta, spec)
        causes.extend(_validate_spec(spec))
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed" and isinstance(completions, int) and completions > 0:
            hostname = f"{meta.get('name', '')}-{completions - 1}"
            if is_dns1123_label(hostname):
                causes.append(
                    invalid(
                        "metadata.name",
                        meta.get("name", ""),
                        f"will not able to create pod with invalid DNS label: {hostname}",
                    )
                )
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateJob + ValidateJobSpecUpdate (what may not change), and the status counters."""
        causes = self.validate(new)
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes.extend(_validate_completions_update(spec, old_spec))
        if _semantic_selector(spec.get("selector")) != _semantic_selector(old_spec.get("selector")):
            causes.append(invalid("spec.selector", go_label_selector(spec.get("selector") or {}), FIELD_IMMUTABLE))
        if _template_for_comparison(spec, old) != _template_for_comparison(old_spec, old):
            causes.append(invalid("spec.template", _TEMPLATE_VALUE, FIELD_IMMUTABLE))
        for key, go_type in _IMMUTABLE_SPEC_FIELDS.items():
            if spec.get(key) != old_spec.get(key):
                causes.append(invalid(f"spec.{key}", _immutable_value(spec.get(key), go_type), FIELD_IMMUTABLE))
        status = new.get("status") or {}
        for key in ("active", "succeeded", "failed", "ready", "terminating"):
            causes.extend(nonnegative(status.get(key, 0), f"status.{key}"))
        causes.extend(_validate_uncounted(status.get("uncountedTerminatedPods") or {}))
        return causes


def _label_like_template(job: Obj) -> None:
    """A Job without labels of its own carries its template's (SetDefaults_Job)."""
    meta = job.setdefault("metadata", {})
    labels = ((job["spec"].get("template") or {}).get("metadata") or {}).get("labels")
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)


def _generate_selector(job: Obj) -> None:
    """generateSelector: the template gets the job-name and controller-uid labels (legacy and prefixed) the user
    did not set; the selector matches the prefixed controller-uid."""
    meta = job["metadata"]
    template_meta = job["spec"]["template"]["metadata"]
    labels = template_meta.get("labels")
    if labels is None:
        labels = template_meta["labels"] = {}
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, meta.get("uid", ""))
    selector = job["spec"].get("selector")
    if selector is None:
        selector = job["spec"]["selector"] = {}
    if selector.get("matchLabels") is None:
        selector["matchLabels"] = {}
    selector["matchLabels"].setdefault(CONTROLLER_UID_LABEL, meta.get("uid", ""))


# -- validation -----------------------------------------------------------------------------------------------


def _validate_generated_selector(meta: Obj, spec: Obj) -> list[Cause]:
    """validateGeneratedSelector: a generated selector's labels are on the template with this job's values."""
    selector = spec.get("selector")
    if spec.get("manualSelector") or selector is None:
        return []
    causes = [] if meta.get("uid") else [required("metadata.uid")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    uid, name = meta.get("uid", ""), meta.get("name", "")
    expected = {
        LEGACY_CONTROLLER_UID_LABEL: uid,
        LEGACY_JOB_NAME_LABEL: name,
        CONTROLLER_UID_LABEL: uid,
        JOB_NAME_LABEL: name,
    }
    for key, value in expected.items():
        path = f"spec.template.metadata.labels[{key}]"
        if labels is None or key not in labels:
            causes.append(required(path, value))
        elif labels[key] != value:
            causes.append(invalid(path, go_string_map(labels), value))
    try:
        matches = label_selector_from_object(selector).matches(expected)
    except SelectorError:
        return causes
    if not matches:
        causes.append(invalid("spec.selector", go_label_selector(selector), "`selector` not auto-generated"))
    return causes


def _validate_spec(spec: Obj) -> list[Cause]:
    """ValidateJobSpec: validateJobSpec, and a selector that matches the template."""
    causes = _validate_job_spec(spec)
    template = spec.get("template") or {}
    selector = spec.get("selector")
    if selector is None:
        causes.append(required("spec.selector"))
        return causes
    causes.extend(validate_label_selector(selector, "spec.selector"))
    try:
        parsed = label_selector_from_object(selector)
    except SelectorError:
        return causes
    labels = (template.get("metadata") or {}).get("labels")
    if not parsed.matches(labels or {}):
        causes.append(
            invalid(
                "spec.template.metadata.labels", go_string_map(labels), "`selector` does not match template `labels`"
            )
        )
    return causes


def _validate_job_spec(spec: Obj) -> list[Cause]:
    """validateJobSpec (a Job's and a CronJob's job template's): counts, completion mode, failure and
    replacement policies, template and restart policy."""
    causes: list[Cause] = []
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        causes.extend(nonnegative(spec.get(key), f"spec.{key}"))
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        causes.append(required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    causes.extend(_validate_completion_mode(spec))
    if spec.get("podFailurePolicy") is not None:
        causes.extend(_validate_pod_failure_policy(spec))
    if spec.get("successPolicy") is not None:
        causes.extend(_validate_success_policy(spec))
    causes.extend(_validate_replacement_policy(spec))
    template = spec.get("template") or {}
    causes.extend(validate_pod_template(template, "spec.template"))
    restart = (template.get("spec") or {}).get("restartPolicy", "")
    restart_path = "spec.template.spec.restartPolicy"
    if restart in ("Always", ""):
        causes.append(required(restart_path, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        causes.append(unsupported(restart_path, restart, ("OnFailure", "Never")))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        causes.append(invalid(restart_path, restart, 'only "Never" is supported when podFailurePolicy is specified'))
    return causes


def _validate_completion_mode(spec: Obj) -> list[Cause]:
    mode = spec.get("completionMode")
    completions, per_index, max_failed = (
        spec.get("completions"),
        spec.get("backoffLimitPerIndex"),
        spec.get("maxFailedIndexes"),
    )
    causes: list[Cause] = []
    if mode not in (None, "NonIndexed", "Indexed"):
        causes.append(unsupported("spec.completionMode", mode, ("NonIndexed", "Indexed")))
    if mode == "Indexed":
        if completions is None:
            causes.append(required("spec.completions", "when completion mode is Indexed"))
        parallelism = spec.get("parallelism")
        if isinstance(parallelism, int) and parallelism > _MAX_PARALLELISM_INDEXED:
            causes.append(
                invalid(
                    "spec.parallelism",
                    parallelism,
                    f"must be less than or equal to {_MAX_PARALLELISM_INDEXED} when completion mode is Indexed",
                )
            )
        if isinstance(completions, int) and isinstance(max_failed, int) and max_failed > completions:
            causes.append(invalid("spec.maxFailedIndexes", max_failed, "must be less than or equal to completions"))
        if isinstance(max_failed, int) and max_failed > _MAX_FAILED_INDEXES:
            causes.append(
                invalid("spec.maxFailedIndexes", max_failed, f"must be less than or equal to {_MAX_FAILED_INDEXES}")
            )
    elif mode in (None, "NonIndexed"):
        if per_index is not None:
            causes.append(invalid("spec.backoffLimitPerIndex", per_index, "requires indexed completion mode"))
        if max_failed is not None:
            causes.append(invalid("spec.maxFailedIndexes", max_failed, "requires indexed completion mode"))
    return causes


def _validate_pod_failure_policy(spec: Obj) -> list[Cause]:
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    causes: list[Cause] = []
    if len(rules) > _MAX_RULES:
        causes.append(_too_many("spec.podFailurePolicy.rules", len(rules), _MAX_RULES))
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    names = {c.get("name") for key in ("containers", "initContainers") for c in pod_spec.get(key) or ()}
    for i, rule in enumerate(rules):
        path = f"spec.podFailurePolicy.rules[{i}]"
        action = rule.get("action", "")
        if not action:
            causes.append(required(path + ".action", "valid values: " + _go_list(_ACTIONS)))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                causes.append(invalid(path + ".action", action, "requires the backoffLimitPerIndex to be set"))
        elif action not in _ACTIONS:
            causes.append(unsupported(path + ".action", action, _ACTIONS))
        on_exit, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if on_exit is not None:
            causes.extend(_validate_on_exit_codes(on_exit, path + ".onExitCodes", names))
        if on_conditions:
            causes.extend(_validate_on_pod_conditions(on_conditions, path + ".onPodConditions"))
        if on_exit is not None and on_conditions:
            causes.append(_omitted(path, "specifying both OnExitCodes and OnPodConditions is not supported"))
        if on_exit is None and not on_conditions:
            causes.append(_omitted(path, "specifying one of OnExitCodes and OnPodConditions is required"))
    return causes


def _validate_on_exit_codes(requirement: Obj, path: str, container_names: set[Any]) -> list[Cause]:
    causes: list[Cause] = []
    operator = requirement.get("operator", "")
    if not operator:
        causes.append(required(path + ".operator", "valid values: " + _go_list(_OPERATORS)))
    elif operator not in _OPERATORS:
        causes.append(unsupported(path + ".operator", operator, _OPERATORS))
    name = requirement.get("containerName")
    if name is not None and name not in container_names:
        causes.append(
            invalid(
                path + ".containerName", name, "must be one of the container or initContainer names in the pod template"
            )
        )
    values = requirement.get("values") or []
    if not values:
        causes.append(invalid(path + ".values", GoValue("[]int32(nil)"), "at least one value is required"))
    elif len(values) > _MAX_EXIT_CODES:
        causes.append(_too_many(path + ".values", len(values), _MAX_EXIT_CODES))
    seen: set[Any] = set()
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            causes.append(invalid(f"{path}.values[{j}]", value, "must not be 0 for the In operator"))
        if value in seen:
            causes.append(duplicate(f"{path}.values[{j}]", value))
        seen.add(value)
    if any(a > b for a, b in itertools.pairwise(values)):
        rendered = GoValue("[]int32{" + ", ".join(str(v) for v in values) + "}")
        causes.append(invalid(path + ".values", rendered, "must be ordered"))
    return causes


def _validate_on_pod_conditions(patterns: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if len(patterns) > _MAX_CONDITION_PATTERNS:
        causes.append(_too_many(path, len(patterns), _MAX_CONDITION_PATTERNS))
    for j, pattern in enumerate(patterns):
        item = f"{path}[{j}]"
        kind = pattern.get("type", "")
        causes.extend(invalid(item + ".type", kind, message) for message in is_qualified_name(kind))
        status = pattern.get("status", "")
        if not status:
            causes.append(required(item + ".status", "valid values: " + _go_list(_CONDITION_STATUSES)))
        elif status not in _CONDITION_STATUSES:
            causes.append(unsupported(item + ".status", status, _CONDITION_STATUSES))
    return causes


def _validate_success_policy(spec: Obj) -> list[Cause]:
    path = "spec.successPolicy"
    if spec.get("completionMode") != "Indexed":
        return [invalid(path, GoValue("batch.SuccessPolicy{...}"), "requires indexed completion mode")]
    rules = spec["successPolicy"].get("rules") or []
    completions = spec.get("completions") or 0
    causes: list[Cause] = []
    if not rules:
        causes.append(
            required(path + ".rules", "at least one rules must be specified when the successPolicy is specified")
        )
    if len(rules) > _MAX_RULES:
        causes.append(_too_many(path + ".rules", len(rules), _MAX_RULES))
    for i, rule in enumerate(rules):
        item = f"{path}.rules[{i}]"
        indexes, count = rule.get("succeededIndexes"), rule.get("succeededCount")
        if indexes is None and count is None:
            causes.append(required(item, "at least one of succeededCount or succeededIndexes must be specified"))
        total = 0
        if indexes is not None:
            if len(indexes) > _MAX_SUCCEEDED_INDEXES_LENGTH:
                causes.append(too_long(item + ".succeededIndexes", _MAX_SUCCEEDED_INDEXES_LENGTH))
            try:
                total = _indexes_total(indexes, completions)
            except ValueError as exc:
                causes.append(invalid(item + ".succeededIndexes", indexes, f"error parsing succeededIndexes: {exc}"))
        if count is not None:
            causes.extend(nonnegative(count, item + ".succeededCount"))
            if count > completions:
                causes.append(
                    invalid(
                        item + ".succeededCount",
                        count,
                        f"must be less than or equal to {completions} (the number of specified completions)",
                    )
                )
            if indexes is not None and count > total:
                causes.append(
                    invalid(
                        item + ".succeededCount",
                        count,
                        f"must be less than or equal to {total} (the number of indexes in the specified "
                        "succeededIndexes field)",
                    )
                )
    return causes


def _indexes_total(text: str, completions: int) -> int:
    """validateIndexesFormat: how many indexes `0,2-4` names; ValueError with kube's wording when malformed."""
    total, last = 0, None
    for interval in text.split(",") if text else ():
        first, final = _index_interval(interval, completions)
        if last is not None and last >= first:
            raise ValueError(f"non-increasing order, previous: {last}, current: {first}")
        total += final - first + 1
        last = final
    return total


def _index_interval(text: str, completions: int) -> tuple[int, int]:
    limits = text.split("-")
    if len(limits) > 2:
        raise ValueError(
            f"the fragment {go_quote(text)} violates the requirement that an index interval can have at most two "
            "parts separated by '-'"
        )
    bounds = []
    for limit in limits:
        if not re.fullmatch(r"[+-]?\d+", limit):
            raise ValueError(f"cannot convert string to integer for index: {go_quote(limit)}")
        if int(limit) >= completions:
            raise ValueError(f"too large index: {go_quote(limit)}")
        bounds.append(int(limit))
    if len(bounds) == 2 and bounds[0] >= bounds[1]:
        raise ValueError(f"non-increasing order, previous: {bounds[0]}, current: {bounds[1]}")
    return bounds[0], bounds[-1]


def _validate_replacement_policy(spec: Obj) -> list[Cause]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    if spec.get("podFailurePolicy") is not None:
        return [] if policy == "Failed" else [unsupported("spec.podReplacementPolicy", policy, ("Failed",))]
    return (
        []
        if policy in _REPLACEMENT_POLICIES
        else [unsupported("spec.podReplacementPolicy", policy, _REPLACEMENT_POLICIES)]
    )


def _validate_completions_update(spec: Obj, old_spec: Obj) -> list[Cause]:
    """validateCompletions: fixed, except that an Indexed Job may change it together with parallelism."""
    completions = spec.get("completions")
    if completions == old_spec.get("completions"):
        return []
    if spec.get("completionMode") != "Indexed":
        return [invalid("spec.completions", _immutable_value(completions), FIELD_IMMUTABLE)]
    if completions is None or completions == spec.get("parallelism"):
        return []
    return [invalid("spec.completions", completions, "can only be modified in tandem with spec.parallelism")]


def _validate_uncounted(uncounted: Obj) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for key in ("succeeded", "failed"):
        for i, uid in enumerate(uncounted.get(key) or ()):
            path = f"status.uncountedTerminatedPods.{key}[{i}]"
            if not uid:
                causes.append(invalid(path, uid, "must not be empty"))
            elif uid in seen:
                causes.append(duplicate(path, uid))
            seen.add(uid)
    return causes


# kube prints the whole template as Go source (%#v of core.PodTemplateSpec); the gist of it is enough here
_TEMPLATE_VALUE = GoValue("core.PodTemplateSpec{...}")


def _template_for_comparison(spec: Obj, old_job: Obj) -> Obj:
    """The template as immutability sees it: a suspended Job that never started may still move its pods
    (labels, annotations, node selector, tolerations, affinity, scheduling gates)."""
    template = copy.deepcopy(spec.get("template") or {})
    old_spec = old_job.get("spec") or {}
    if old_spec.get("suspend") and not (old_job.get("status") or {}).get("startTime"):
        meta, pod_spec = template.setdefault("metadata", {}), template.setdefault("spec", {})
        for key in _SCHEDULING_META_FIELDS:
            meta.pop(key, None)
        for key in _SCHEDULING_SPEC_FIELDS:
            pod_spec.pop(key, None)
    return template


def _semantic_selector(selector: Obj | None) -> tuple[Any, Any] | None:
    if selector is None:
        return None
    return (selector.get("matchLabels") or {}, selector.get("matchExpressions") or [])


def _immutable_value(value: Any, go_type: str = "") -> Any:
    """How ValidateImmutableField prints a pointer field's new value: null when unset, a struct as Go source
    (abbreviated here to its type)."""
    if isinstance(value, dict):
        return GoValue(f"{go_type}{{...}}")
    return value


def _omitted(path: str, detail: str) -> Cause:
    """`field.Invalid` with `field.OmitValueType{}`: no value is printed."""
    return cause("FieldValueInvalid", path, "Invalid value: " + detail)


def _too_many(path: str, actual: int, limit: int) -> Cause:
    """`field.TooMany`."""
    return cause("FieldValueTooMany", path, f"Too many: {actual}: must have at most {limit} items")


def _go_list(values: tuple[str, ...]) -> str:
    """`%q` of a []string: `["A" "B"]`."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


# -- CronJob --------------------------------------------------------------------------------------------------
# pkg/apis/batch/v1/defaults.go SetDefaults_CronJob, pkg/registry/batch/cronjob/strategy.go,
# pkg/apis/batch/validation/validation.go ValidateCronJobCreate/ValidateCronJobUpdate, printCronJob.

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
_MAX_CRONJOB_NAME = 52  # the controller adds `-<minutes since epoch>` (11 characters) to name its Jobs
# an IANA name component: letters, '.', '-', '_' (digits and '+' for legacy names), at most 14 characters
_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")

CRONJOB_COLUMNS: list[Column] = [
    NAME_COLUMN,
    column("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    column(
        "Timezone",
        (
            "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/"
            "List_of_tz_database_time_zones. If not specified, this will default to the time zone of the "
            "kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded "
            "from the system-wide time zone database by the API server during CronJob validation and the controller "
            "manager during execution. If no system-wide time zone database can be found a bundled version of the "
            "database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or "
            "due to a change in host configuration, the controller will stop creating new new Jobs and will create "
            "a system event with the reason UnknownTimeZone. More information can be found in "
            "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"
        ),
    ),
    column(
        "Suspend",
        (
            "This flag tells the controller to suspend subsequent executions, it does not apply to already "
            "started executions.  Defaults to false."
        ),
        type="boolean",
    ),
    column("Active", "A list of pointers to currently running jobs.", type="integer"),
    column("Last Schedule", "Information when was the last time the job was successfully scheduled."),
    AGE_COLUMN,
    *TEMPLATE_COLUMNS,
    _JOB_SELECTOR_COLUMN,
]


def cronjob_cells(cronjob: Printed, now_us: int) -> Cells:
    """printCronJob: schedule, time zone, suspend, how many Jobs run and when the last was scheduled."""
    spec = cronjob.get("spec") or EMPTY
    status = cronjob.get("status") or EMPTY
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or EMPTY).get("spec") or EMPTY
    names, images = container_cells(job_spec)
    return [
        object_name(cronjob),
        spec.get("schedule", ""),
        "<none>" if spec.get("timeZone") is None else spec["timeZone"],
        "<unset>" if suspend is None else str(bool(suspend)),
        len(status.get("active") or ()),
        since(last, now_us) if last else "<none>",
        age(cronjob, now_us),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


class CronJobStrategy(Strategy):
    """CronJobs: Jobs made from a template on a cron schedule (the controller is shim.controllers.cronjob)."""

    short_names = ("cj",)
    categories = ("all",)
    subresources = (STATUS,)
    table_columns = CRONJOB_COLUMNS
    printer = staticmethod(cronjob_cells)
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        """SetDefaults_CronJob, then the job template's pod template defaults."""
        spec = obj.setdefault("spec", {})
        if not spec.get("concurrencyPolicy"):
            spec["concurrencyPolicy"] = "Allow"
        if spec.get("suspend") is None:
            spec["suspend"] = False
        if spec.get("successfulJobsHistoryLimit") is None:
            spec["successfulJobsHistoryLimit"] = 3
        if spec.get("failedJobsHistoryLimit") is None:
            spec["failedJobsHistoryLimit"] = 1
        template = spec.get("jobTemplate")
        if template is None:
            template = spec["jobTemplate"] = {}
        meta = template.get("metadata")
        if meta is None:
            meta = template["metadata"] = {}
        meta.setdefault("creationTimestamp", None)  # a zero ObjectMeta, as kube (through 1.33) writes it
        job_spec = template.get("spec")
        if job_spec is None:
            job_spec = template["spec"] = {}
        default_pod_template(job_spec, "CronJob")

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[Cause]:
        """ValidateCronJobCreate: the spec, and a name short enough to name its Jobs."""
        causes = _validate_cronjob_spec(obj.get("spec") or {}, None)
        name = (obj.get("metadata") or {}).get("name", "")
        if len(name) > _MAX_CRONJOB_NAME:
            causes.append(invalid("metadata.name", name, f"must be no more than {_MAX_CRONJOB_NAME} characters"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateCronJobUpdate: the spec (a TZ= schedule kept from before stays allowed); no name limit, so
        older long-named CronJobs can still be changed and deleted."""
        return _validate_cronjob_spec(new.get("spec") or {}, old.get("spec") or {})


def _validate_cronjob_spec(spec: Obj, old_spec: Obj | None) -> list[Cause]:
    """validateCronJobSpec."""
    causes: list[Cause] = []
    schedule = spec.get("schedule") or ""
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        allow_tz = old_spec is not None and "TZ" in (old_spec.get("schedule") or "")
        causes.extend(_validate_schedule(schedule, allow_tz, spec.get("timeZone")))
    causes.extend(nonnegative(spec.get("startingDeadlineSeconds"), "spec.startingDeadlineSeconds"))
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        causes.extend(_validate_time_zone(spec.get("timeZone")))
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        causes.append(required("spec.concurrencyPolicy"))
    elif policy not in CONCURRENCY_POLICIES:
        causes.append(unsupported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES))
    causes.extend(_validate_job_template(spec.get("jobTemplate") or {}))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes.extend(nonnegative(spec.get(key), f"spec.{key}"))
    return causes


def _validate_schedule(schedule: str, allow_tz: bool, time_zone: str | None) -> list[Cause]:
    """validateScheduleFormat: what the cron parser says, and no TZ= in the schedule (spec.timeZone instead)."""
    causes: list[Cause] = []
    try:
        parse_standard(schedule)
    except ScheduleError as exc:
        causes.append(invalid("spec.schedule", schedule, str(exc)))
    if "TZ" in schedule:
        if not allow_tz:
            causes.append(
                invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
            )
        elif time_zone is not None:
            causes.append(
                invalid("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule")
            )
    return causes


def _validate_time_zone(time_zone: str | None) -> list[Cause]:
    """validateTimeZone: an IANA name the time zone database knows; never "Local"."""
    path = "spec.timeZone"
    if time_zone is None:
        return []
    if not time_zone:
        return [invalid(path, time_zone, "timeZone must be nil or non-empty string")]
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.fullmatch(part):
            return [invalid(path, time_zone, f"unknown time zone {time_zone}")]
    causes: list[Cause] = []
    if time_zone.casefold() == "local":
        causes.append(
            invalid(
                path, time_zone, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
            )
        )
    try:
        load_zone(time_zone)
    except ScheduleError as exc:
        causes.append(invalid(path, time_zone, str(exc)))
    return causes


def _validate_job_template(template: Obj) -> list[Cause]:
    """ValidateJobTemplateSpec: a Job spec whose selector the Job's own creation will generate."""
    spec = template.get("spec") or {}
    root = "spec.jobTemplate.spec"
    causes = [{**c, "field": root + c["field"].removeprefix("spec")} for c in _validate_job_spec(spec)]
    if spec.get("selector") is not None:
        causes.append(
            invalid(root + ".selector", go_label_selector(spec["selector"]), "`selector` will be auto-generated")
        )
    if spec.get("manualSelector"):
        causes.append(unsupported(root + ".manualSelector", GoValue("true"), ("nil", "false")))
    return causes
