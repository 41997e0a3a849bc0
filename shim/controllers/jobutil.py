"""What the Job controller reads from Jobs and their pods, as pure functions.

Follows kube-controller-manager's `pkg/controller/job`: `indexed_job_utils.go` (completion indexes and their
interval strings `1,3-5`), `pod_failure_policy.go` (matching a failed pod against the rules),
`backoff_utils.go` (the exponential delay before failed pods are replaced) and the condition helpers of
`job_controller.go`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shim.controllers.podutil import is_pod_ready, parse_time
from shim.machinery.timefmt import format_time

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
UNKNOWN_INDEX = -1
MAX_INT32 = 2**31 - 1
POD_FAILURE_BACKOFF = timedelta(seconds=10)  # kube's DefaultJobPodFailureBackOff
MAX_POD_FAILURE_BACKOFF = timedelta(minutes=10)  # MaxJobPodFailureBackOff


# -- the job ---------------------------------------------------------------------------------------------------


def is_indexed(job: Obj) -> bool:
    return job["spec"].get("completionMode") == "Indexed"


def has_backoff_limit_per_index(job: Obj) -> bool:
    return job["spec"].get("backoffLimitPerIndex") is not None


def is_suspended(job: Obj) -> bool:
    return bool(job["spec"].get("suspend"))


def only_replace_failed_pods(job: Obj) -> bool:
    """Replacements wait for a pod to be Failed, not just terminating (podReplacementPolicy Failed, or any
    podFailurePolicy)."""
    spec = job["spec"]
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def condition(job: Obj, kind: str) -> Obj | None:
    """The job's condition of type `kind`, if any."""
    return next((c for c in (job.get("status") or {}).get("conditions") or () if c.get("type") == kind), None)


def condition_true(job: Obj, kind: str) -> bool:
    found = condition(job, kind)
    return found is not None and found.get("status") == "True"


def is_finished(job: Obj) -> bool:
    """Complete or Failed (IsJobFinished)."""
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def new_condition(kind: str, status: str, reason: str, message: str, at: datetime) -> Obj:
    """A JobCondition; reason and message are omitted when empty, as Go's omitempty does."""
    stamp = format_time(at)
    out: Obj = {"type": kind, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def ensure_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str, at: datetime) -> bool:
    """ensureJobConditionStatus: set the condition of type `kind` (never add a False one); True if changed."""
    for i, existing in enumerate(conditions):
        if existing.get("type") == kind:
            if (existing.get("status"), existing.get("reason", ""), existing.get("message", "")) == (
                status,
                reason,
                message,
            ):
                return False
            conditions[i] = new_condition(kind, status, reason, message, at)
            return True
    if status == "False":
        return False
    conditions.append(new_condition(kind, status, reason, message, at))
    return True


def finish_time(job: Obj) -> datetime | None:
    """When the job finished: its Complete or Failed condition's transition."""
    for kind in ("Complete", "Failed"):
        found = condition(job, kind)
        if found is not None and found.get("status") == "True":
            return parse_time(found.get("lastTransitionTime"))
    return None


# -- pods ------------------------------------------------------------------------------------------------------


def has_tracking_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "")


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before it succeeded."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def is_terminating(pod: Obj) -> bool:
    """Being deleted and not finished (CountTerminatingPods)."""
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in ("Failed", "Succeeded")


def count_ready(pods: Iterable[Obj]) -> int:
    return sum(1 for pod in pods if is_pod_ready(pod))


def completion_index(pod: Obj) -> int:
    """The pod's batch.kubernetes.io/job-completion-index annotation; UNKNOWN_INDEX when absent or bad."""
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    if value is None or not value.isdigit():
        return UNKNOWN_INDEX
    return int(value)


def index_failure_counts(pod: Obj) -> tuple[int, int]:
    """(failures counted, failures ignored) of the pod's index, from its annotations (0 when bad)."""
    annotations = pod["metadata"].get("annotations") or {}
    return _int32(annotations.get(INDEX_FAILURE_COUNT)), _int32(annotations.get(INDEX_IGNORED_FAILURE_COUNT))


def finished_at(pod: Obj) -> datetime:
    """getFinishedTime: the last container's finish, the Ready=False transition, the deletion time less its
    grace period, or else the pod's creation."""
    status = pod.get("status") or {}
    latest: datetime | None = None
    statuses = status.get("containerStatuses") or ()
    for container in statuses:
        terminated = (container.get("state") or {}).get("terminated")
        moment = parse_time((terminated or {}).get("finishedAt"))
        if moment is None:
            latest = None
            break
        latest = moment if latest is None or moment > latest else latest
    if latest is not None:
        return latest
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            moment = parse_time(cond.get("lastTransitionTime"))
            if moment is not None:
                return moment
    meta = pod["metadata"]
    deleted = parse_time(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - timedelta(seconds=meta.get("deletionGracePeriodSeconds") or 0)
    created = parse_time(meta.get("creationTimestamp"))
    assert created is not None, "the API server stamps every pod's creationTimestamp"
    return created


def past_backoff_limit_on_failure(job: Obj, pods: Iterable[Obj]) -> bool:
    """With restartPolicy OnFailure, the restarts of running and pending pods count against backoffLimit."""
    if ((job["spec"].get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for key in ("initContainerStatuses", "containerStatuses"):
                restarts += sum(c.get("restartCount", 0) for c in status.get(key) or ())
    limit = job["spec"].get("backoffLimit", 6)
    return restarts > 0 if limit == 0 else restarts >= limit


# -- pod failure policy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyMatch:
    """What the podFailurePolicy says about a failed pod: the job failure message (FailJob), whether the failure
    counts against the backoff limit, and the action of the rule that matched (None: no rule did)."""

    fail_job_message: str | None = None
    counts: bool = True
    action: str | None = None


def match_pod_failure_policy(job: Obj, pod: Obj) -> PolicyMatch:
    """matchPodFailurePolicy: the first rule whose exit codes or pod conditions match decides."""
    policy = job["spec"].get("podFailurePolicy")
    if policy is None:
        return PolicyMatch()
    meta = pod["metadata"]
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for index, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            container = _matching_exit_code(pod, rule["onExitCodes"])
            if container is None:
                continue
            exit_code = container["state"]["terminated"].get("exitCode", 0)
            message = (
                f"Container {container.get('name', '')} for pod {where} failed with exit code {exit_code} "
                f"matching {action} rule at index {index}"
            )
        elif rule.get("onPodConditions") is not None:
            matched = _matching_condition(pod, rule["onPodConditions"])
            if matched is None:
                continue
            message = f"Pod {where} has condition {matched.get('type', '')} matching {action} rule at index {index}"
        else:
            continue
        if action == "Ignore":
            return PolicyMatch(counts=False, action=action)
        if action == "FailJob":
            return PolicyMatch(fail_job_message=message, action=action)
        if action in ("Count", "FailIndex"):
            return PolicyMatch(action=action)
    return PolicyMatch()


def _matching_exit_code(pod: Obj, requirement: Obj) -> Obj | None:
    status = pod.get("status") or {}
    wanted = requirement.get("containerName")
    values = requirement.get("values") or ()
    operator = requirement.get("operator")
    for key in ("containerStatuses", "initContainerStatuses"):
        for container in status.get(key) or ():
            terminated = (container.get("state") or {}).get("terminated")
            if terminated is None or (wanted is not None and container.get("name") != wanted):
                continue
            code = terminated.get("exitCode", 0)
            if code != 0 and ((operator == "In" and code in values) or (operator == "NotIn" and code not in values)):
                return dict(container)
    return None


def _matching_condition(pod: Obj, patterns: list[Obj]) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get("status", "True"):
                return dict(cond)
    return None


# -- back-off --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackoffRecord:
    """Consecutive failures since the last success and when the latest of them happened."""

    failures: int = 0
    last_failure: datetime | None = None

    def after(self, succeeded: list[Obj], failed: list[Obj]) -> BackoffRecord:
        """newBackoffRecord: the record once these newly finished pods are counted."""
        if not succeeded:
            if not failed:
                return self
            return BackoffRecord(self.failures + len(failed), max(finished_at(p) for p in failed))
        last_success = max(finished_at(p) for p in succeeded)
        later = sorted((finished_at(p) for p in failed if finished_at(p) > last_success), reverse=True)
        return BackoffRecord(len(later), later[0] if later else None)

    def remaining(self, at: datetime) -> float:
        """Seconds to wait before replacing failed pods."""
        return remaining_backoff(self.failures, self.last_failure, at)


def remaining_backoff(failures: int, last_failure: datetime | None, at: datetime) -> float:
    """getRemainingTimeForFailuresCount: 10 s doubled per consecutive failure, at most 10 minutes."""
    if failures == 0 or last_failure is None:
        return 0.0
    delay = POD_FAILURE_BACKOFF
    for _ in range(1, failures):
        delay *= 2
        if delay >= MAX_POD_FAILURE_BACKOFF:
            delay = MAX_POD_FAILURE_BACKOFF
            break
    return max((delay - (at - last_failure)).total_seconds(), 0.0)


# -- completion indexes ----------------------------------------------------------------------------------------


class Intervals:
    """Ordered, merged index intervals (kube's orderedIntervals), printed as `0,2-4,7`."""

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self.pairs: list[tuple[int, int]] = []
        for first, last in sorted(pairs):
            if self.pairs and first <= self.pairs[-1][1] + 1:
                if last > self.pairs[-1][1]:
                    self.pairs[-1] = (self.pairs[-1][0], last)
            else:
                self.pairs.append((first, last))

    @classmethod
    def parse(cls, text: str | None, completions: int) -> Intervals:
        """parseIndexesFromString: bad pieces are skipped, indexes at or past `completions` dropped."""
        pairs = []
        for piece in (text or "").split(","):
            if not piece:
                continue
            first_text, _, last_text = piece.partition("-")
            if not first_text.isdigit() or (last_text and not last_text.isdigit()):
                continue
            first = int(first_text)
            if first >= completions:
                break
            last = min(int(last_text), completions - 1) if last_text else first
            pairs.append((first, last))
        return cls(pairs)

    def with_indexes(self, indexes: Iterable[int]) -> Intervals:
        return Intervals([*self.pairs, *((i, i) for i in indexes)])

    def merge(self, other: Intervals) -> Intervals:
        return Intervals([*self.pairs, *other.pairs])

    def total(self) -> int:
        return sum(last - first + 1 for first, last in self.pairs)

    def has(self, index: int) -> bool:
        position = bisect.bisect_left(self.pairs, (index + 1,)) - 1
        return position >= 0 and self.pairs[position][0] <= index <= self.pairs[position][1]

    def __str__(self) -> str:
        parts = []
        for first, last in self.pairs:
            if last == first:
                parts.append(str(first))
            else:
                parts.append(f"{first}{',' if last == first + 1 else '-'}{last}")
        return ",".join(parts)


def match_success_policy(job: Obj, succeeded: Intervals) -> str | None:
    """matchSuccessPolicy: "Matched rules at index N" for the first rule the succeeded indexes satisfy."""
    rules = (job["spec"].get("successPolicy") or {}).get("rules") or ()
    if not succeeded.pairs:
        return None
    for index, rule in enumerate(rules):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = Intervals.parse(rule["succeededIndexes"], job["spec"]["completions"])
            if not required.pairs:
                continue  # an unparsable rule matches nothing
            covered = sum(
                max(min(last, s_last) - max(first, s_first) + 1, 0)
                for first, last in required.pairs
                for s_first, s_last in succeeded.pairs
            )
            if covered == required.total() or (count is not None and covered >= count):
                return f"Matched rules at index {index}"
        elif count is not None and succeeded.total() >= count:
            return f"Matched rules at index {index}"
    return None


def first_pending_indexes(count: int, completions: int, taken: Intervals) -> list[int]:
    """The `count` lowest indexes below `completions` not in `taken` (firstPendingIndexes)."""
    out: list[int] = []
    candidate = 0
    for first, last in taken.pairs:
        while candidate < completions and len(out) < count and candidate < first:
            out.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(out) < count:
        out.append(candidate)
        candidate += 1
    return out


def pod_name_prefix(job_name: str, index: int) -> str:
    """podGenerateNameWithIndex: `<job>-<index>-`, the job name cut so the result fits 58 characters."""
    suffix = f"-{index}-"
    prefix = job_name + suffix
    return prefix if len(prefix) <= 58 else job_name[: 58 - len(suffix)] + suffix


def _int32(value: str | None) -> int:
    if value is None or not value.isdigit():
        return 0
    number = int(value)
    return number if number <= MAX_INT32 else 0
