"""One sync of one Job (kube's `syncJob` and the steps it calls, over its `syncJobCtx`).

The steps, in kube's order: count the pods that finished since the last sync, decide whether the Job has
failed (FailureTarget: backoffLimit, podFailurePolicy FailJob, activeDeadlineSeconds, failed indexes) or
succeeded (SuccessCriteriaMet), otherwise create or delete pods (`manageJob`), then write the status in the
order that never loses or double-counts a pod: record finished pods in `uncountedTerminatedPods`, remove their
`batch.kubernetes.io/job-tracking` finalizers, move them into the counters, and add `Failed`/`Complete` once
no pod is uncounted or terminating.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shim.client import ApiException, object_key
from shim.controllers.jobutil import (
    COMPLETION_INDEX,
    COMPLETION_INDEX_ENV,
    INDEX_FAILURE_COUNT,
    INDEX_IGNORED_FAILURE_COUNT,
    TRACKING_FINALIZER,
    UNKNOWN_INDEX,
    BackoffRecord,
    Intervals,
    completion_index,
    condition,
    condition_true,
    count_ready,
    ensure_condition,
    finished_at,
    first_pending_indexes,
    has_backoff_limit_per_index,
    has_tracking_finalizer,
    index_failure_counts,
    is_indexed,
    is_pod_failed,
    is_suspended,
    is_terminating,
    match_pod_failure_policy,
    match_success_policy,
    new_condition,
    only_replace_failed_pods,
    past_backoff_limit_on_failure,
    phase,
    pod_name_prefix,
    remaining_backoff,
)
from shim.controllers.ownership import controller_ref
from shim.controllers.podutil import is_pod_active, is_pod_ready, now, parse_time, pods_to_delete
from shim.controllers.replicaset import pod_from_template, slow_start_batch
from shim.machinery.selectors import SelectorError
from shim.machinery.timefmt import format_time

if TYPE_CHECKING:
    from shim.controllers.job import JobController

Obj = dict[str, Any]

MAX_UNCOUNTED_PODS = 500  # kube's MaxUncountedPods: keeps status.uncountedTerminatedPods small
MAX_POD_CREATE_DELETE_PER_SYNC = 500


@dataclass
class JobSync:
    """One syncJob over a private copy of the Job (kube's syncJobCtx plus the steps that use it)."""

    controller: JobController
    key: str
    job: Obj
    pods: list[Obj] = field(default_factory=list)
    active_pods: list[Obj] = field(default_factory=list)
    finished: Obj | None = None  # the terminal (or interim) condition this sync ends the Job with
    succeeded: int = 0
    failed: int = 0
    ready: int = 0
    terminating: int = 0
    prev_succeeded_indexes: Intervals = field(default_factory=Intervals)
    succeeded_indexes: Intervals = field(default_factory=Intervals)
    failed_indexes: Intervals | None = None
    delayed_per_index: dict[int, Obj] = field(default_factory=dict)
    new_backoff: BackoffRecord = field(default_factory=BackoffRecord)
    expected_removals: set[str] = field(default_factory=set)
    uncounted_succeeded: set[str] = field(default_factory=set)
    uncounted_failed: set[str] = field(default_factory=set)

    @property
    def spec(self) -> Obj:
        return self.job["spec"]

    @property
    def status(self) -> Obj:
        return self.job["status"]

    async def run(self) -> None:
        """syncJob."""
        c, job, key = self.controller, self.job, self.key
        at = now()
        status = job.setdefault("status", {})
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        self.uncounted_succeeded = set(uncounted.get("succeeded") or ())
        self.uncounted_failed = set(uncounted.get("failed") or ())
        satisfied = c.expectations.satisfied(key)
        try:
            self.pods = await c.pods_for(job)
        except SelectorError as exc:
            c.log.warning("job %s has an invalid selector: %s", key, exc)
            return
        self.active_pods = [pod for pod in self.pods if is_pod_active(pod)]
        self.ready = count_ready(self.active_pods)
        self.terminating = sum(1 for pod in self.pods if is_terminating(pod))
        self.expected_removals = set(c.finalizer_expectations.get(key, ()))
        active = len(self.active_pods)
        new_succeeded = self._new_finished(lambda pod: phase(pod) == "Succeeded", self.uncounted_succeeded)
        new_failed = self._new_finished(lambda pod: is_pod_failed(pod, job), self.uncounted_failed)
        counted_failures = [pod for pod in new_failed if match_pod_failure_policy(job, pod).counts]
        self.succeeded = status.get("succeeded", 0) + len(new_succeeded) + len(self.uncounted_succeeded)
        self.failed = status.get("failed", 0) + len(counted_failures) + len(self.uncounted_failed)
        if not status.get("startTime") and not is_suspended(job):
            status["startTime"] = format_time(at)
        self.new_backoff = c.backoff.get(key, BackoffRecord()).after(new_succeeded, new_failed)

        self.finished = _true_condition(job, "SuccessCriteriaMet")
        if self.finished is None:
            target = _true_condition(job, "FailureTarget")
            if target is not None:
                self.finished = new_condition("Failed", "True", target.get("reason", ""), target.get("message", ""), at)
            elif (message := self._fail_job_message()) is not None:
                self.finished = new_condition("FailureTarget", "True", "PodFailurePolicy", message, at)
        if self.finished is None:
            if self.failed > self.spec.get("backoffLimit", 6) or past_backoff_limit_on_failure(job, self.pods):
                self.finished = _failure("BackoffLimitExceeded", "Job has reached the specified backoff limit", at)
            elif self._past_active_deadline(at):
                self.finished = _failure("DeadlineExceeded", "Job was active longer than specified deadline", at)
            elif self.spec.get("activeDeadlineSeconds") is not None and not is_suspended(job):
                c.wake_after(key, self._deadline_left(at))
        if is_indexed(job):
            self._count_indexes(at)

        suspend_changed = False
        manage_error: Exception | None = None
        if self.finished is not None:
            deleted_ready, deleted, manage_error = await self._delete_pods(self.active_pods, keep_finalizers=True)
            if deleted != active or not satisfied:
                self.finished = None  # pods may still be terminating, or not in the cache yet
            active -= deleted
            self.terminating += deleted
            self.ready -= deleted_ready
        else:
            managed = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                try:
                    active = await self._manage(at)
                except ApiException as exc:
                    manage_error = exc
                    active = len(self.active_pods)
                managed = True
            completions = self.spec.get("completions")
            if completions is None:
                complete = self.succeeded > 0 and active == 0
            else:
                complete = self.succeeded >= completions and active == 0
            if complete:
                self.finished = new_condition(
                    "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods", at
                )
            elif managed:
                suspend_changed = self._note_suspension(at)

        needs_update = (
            suspend_changed
            or active != status.get("active", 0)
            or self.ready != status.get("ready")
            or self.terminating != status.get("terminating")
        )
        status["active"] = active
        status["ready"] = self.ready
        status["terminating"] = self.terminating
        await self._track_status_and_remove_finalizers(needs_update, at)
        if manage_error is not None:
            raise manage_error

    # -- counting ----------------------------------------------------------------------------------------------

    def _new_finished(self, finished: Any, uncounted: set[str]) -> list[Obj]:
        """getValidPodsWithFilter: tracked pods not yet recorded that `finished` accepts (valid index only)."""
        out = []
        for pod in self.pods:
            uid = pod["metadata"].get("uid", "")
            if not has_tracking_finalizer(pod) or uid in uncounted or uid in self.expected_removals:
                continue
            if is_indexed(self.job):
                index = completion_index(pod)
                if index == UNKNOWN_INDEX or index >= self.spec["completions"]:
                    continue
            if finished(pod):
                out.append(pod)
        return out

    def _fail_job_message(self) -> str | None:
        if self.spec.get("podFailurePolicy") is None:
            return None
        for pod in self.pods:
            if is_pod_failed(pod, self.job):
                message = match_pod_failure_policy(self.job, pod).fail_job_message
                if message is not None:
                    return message
        return None

    def _past_active_deadline(self, at: datetime) -> bool:
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline is None or is_suspended(self.job) or not self.status.get("startTime"):
            return False
        return self._deadline_left(at) <= 0

    def _deadline_left(self, at: datetime) -> float:
        start = parse_time(self.status.get("startTime")) or at
        return max(self.spec["activeDeadlineSeconds"] - (at - start).total_seconds(), 0.0)

    def _count_indexes(self, at: datetime) -> None:
        completions = self.spec["completions"]
        self.prev_succeeded_indexes = Intervals.parse(self.status.get("completedIndexes"), completions)
        self.succeeded_indexes = self.prev_succeeded_indexes.with_indexes(
            completion_index(pod)
            for pod in self.pods
            if phase(pod) == "Succeeded" and 0 <= completion_index(pod) < completions and has_tracking_finalizer(pod)
        )
        self.succeeded = self.succeeded_indexes.total()
        if has_backoff_limit_per_index(self.job):
            self._count_failed_indexes(at)
        if self.finished is None and (message := match_success_policy(self.job, self.succeeded_indexes)) is not None:
            self.finished = new_condition("SuccessCriteriaMet", "True", "SuccessPolicy", message, at)

    def _count_failed_indexes(self, at: datetime) -> None:
        completions = self.spec["completions"]
        previous = self.status.get("failedIndexes")
        self.failed_indexes = Intervals.parse(previous, completions).with_indexes(
            completion_index(pod)
            for pod in self.pods
            if 0 <= completion_index(pod) < completions and has_tracking_finalizer(pod) and self._index_failed(pod)
        )
        if self.finished is None:
            max_failed = self.spec.get("maxFailedIndexes")
            failed_total = self.failed_indexes.total()
            if max_failed is not None and failed_total > max_failed:
                self.finished = _failure(
                    "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes", at
                )
            elif failed_total > 0 and failed_total + self.succeeded_indexes.total() >= completions:
                self.finished = _failure("FailedIndexes", "Job has failed indexes", at)
        self.delayed_per_index = self._pods_with_delayed_deletion()

    def _index_failed(self, pod: Obj) -> bool:
        """isIndexFailed: FailIndex matched, or the index used up backoffLimitPerIndex."""
        counted = False
        if is_pod_failed(pod, self.job):
            match = match_pod_failure_policy(self.job, pod)
            if match.action == "FailIndex":
                return True
            counted = match.counts
        return counted and index_failure_counts(pod)[0] >= self.spec["backoffLimitPerIndex"]

    def _pods_with_delayed_deletion(self) -> dict[int, Obj]:
        """getPodsWithDelayedDeletionPerIndex: per index not running, succeeded or failed, the latest failed pod
        (kept until its replacement carries its failure count over)."""
        active_indexes = {completion_index(pod) for pod in self.active_pods}
        failed_indexes = self.failed_indexes or Intervals()
        out: dict[int, Obj] = {}
        for pod in self._new_finished(lambda p: is_pod_failed(p, self.job), set()):
            index = completion_index(pod)
            if self.succeeded_indexes.has(index) or failed_indexes.has(index) or index in active_indexes:
                continue
            last = out.get(index)
            if last is None or (
                sum(index_failure_counts(last)) <= sum(index_failure_counts(pod))
                and finished_at(pod) >= finished_at(last)
            ):
                out[index] = pod
        return out

    # -- creating and deleting pods ----------------------------------------------------------------------------

    async def _manage(self, at: datetime) -> int:
        """manageJob: delete what is too many or suspended, create what is missing (after the back-off); the
        number of active pods afterwards."""
        c, job, key = self.controller, self.job, self.key
        active = len(self.active_pods)
        if is_suspended(job):
            return active - await self._delete_victims(self._for_removal(active))
        completions, parallelism = self.spec.get("completions"), self.spec.get("parallelism", 1)
        if completions is None:
            want = active if self.succeeded > 0 else parallelism
        else:
            want = max(min(completions - self.succeeded, parallelism), 0)
        victims = self._for_removal(max(active - want, 0))[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if victims:
            # never create and delete in one sync: deleting wins (an Indexed Job may need both)
            return active - await self._delete_victims(victims)
        terminating = self.terminating if only_replace_failed_pods(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active
        if not has_backoff_limit_per_index(job) and (wait := self.new_backoff.remaining(at)) > 0:
            c.enqueue_later(key, wait)
            return active
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if is_indexed(job):
            indexes = first_pending_indexes(diff, completions or 0, self._taken_indexes())
            if has_backoff_limit_per_index(job):
                indexes, wait = self._indexes_ready_now(indexes, at)
                if wait > 0:
                    c.enqueue_later(key, wait)
                    return active
            diff = len(indexes)
        if diff <= 0:
            return active
        c.expectations.expect_creations(key, diff)
        pods = self._pods_to_create(diff, indexes)
        created, error = await slow_start_batch(diff, 1, lambda: self._create_next(pods))
        for _ in range(diff - created):  # never coming: stop waiting for them
            c.expectations.creation_observed(key)
        if error is not None:
            raise error
        return active + created

    async def _delete_victims(self, victims: list[Obj]) -> int:
        """deleteJobPods for pods that are too many or suspended: the number deleted (raises the first error)."""
        self.controller.expectations.expect_deletions(self.key, [object_key(p) for p in victims])
        deleted_ready, deleted, error = await self._delete_pods(victims, keep_finalizers=False)
        self.terminating += deleted
        self.ready -= deleted_ready
        if error is not None:
            raise error
        return deleted

    def _taken_indexes(self) -> Intervals:
        taken = self.succeeded_indexes.with_indexes(
            completion_index(p) for p in self.active_pods if completion_index(p) >= 0
        )
        if only_replace_failed_pods(self.job):
            taken = taken.with_indexes(
                completion_index(p) for p in self.pods if is_terminating(p) and completion_index(p) >= 0
            )
        if self.failed_indexes is not None:
            taken = taken.merge(self.failed_indexes)
        return taken

    def _indexes_ready_now(self, indexes: list[int], at: datetime) -> tuple[list[int], float]:
        """getPodCreationInfoForIndependentIndexes: indexes whose own back-off is over, else the shortest wait."""
        ready, waits = [], []
        for index in indexes:
            last = self.delayed_per_index.get(index)
            wait = (
                0.0 if last is None else remaining_backoff(sum(index_failure_counts(last)) + 1, finished_at(last), at)
            )
            if wait == 0:
                ready.append(index)
            else:
                waits.append(wait)
        return (ready, 0.0) if ready else ([], min(waits, default=0.0))

    def _pods_to_create(self, count: int, indexes: list[int]) -> Iterator[Obj]:
        """The pods to create, in order: the template with the finalizer and, for Indexed Jobs, the index."""
        job = self.job
        template = copy.deepcopy(self.spec.get("template") or {})
        meta = template.setdefault("metadata", {})
        meta["finalizers"] = [*(f for f in meta.get("finalizers") or () if f != TRACKING_FINALIZER), TRACKING_FINALIZER]
        if is_indexed(job):
            pod_spec = template.setdefault("spec", {})
            for key in ("initContainers", "containers"):
                for container in pod_spec.get(key) or ():
                    _add_index_env(container)
        ref = controller_ref(job, "batch/v1", "Job")
        name = job["metadata"]["name"]
        if not indexes:
            for _ in range(count):
                yield pod_from_template(template, name, ref)
            return
        for index in indexes:
            indexed = copy.deepcopy(template)
            indexed_meta = indexed["metadata"]
            indexed_meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
            indexed_meta.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
            indexed.setdefault("spec", {})["hostname"] = f"{name}-{index}"
            if has_backoff_limit_per_index(job):
                self._carry_failure_counts(indexed_meta["annotations"], self.delayed_per_index.get(index))
            pod = pod_from_template(indexed, name, ref)
            pod["metadata"]["generateName"] = pod_name_prefix(name, index)
            yield pod

    def _carry_failure_counts(self, annotations: dict[str, str], replaced: Obj | None) -> None:
        """addIndexFailureCountAnnotation: the replaced pod's failures of this index, plus its own."""
        counted, ignored = index_failure_counts(replaced) if replaced is not None else (0, 0)
        if replaced is not None:
            if match_pod_failure_policy(self.job, replaced).counts:
                counted += 1
            else:
                ignored += 1
        annotations[INDEX_FAILURE_COUNT] = str(counted)
        if ignored > 0:
            annotations[INDEX_IGNORED_FAILURE_COUNT] = str(ignored)

    async def _create_next(self, pods: Iterator[Obj]) -> None:
        pod = next(pods)
        if not await self.controller.pod_control.create(self.job, pod):
            self.controller.expectations.creation_observed(self.key)

    def _for_removal(self, at_least: int) -> list[Obj]:
        """activePodsForRemoval: for Indexed Jobs every pod with a repeated, missing or out-of-range index, then
        the pods kube deletes first (not ready, unscheduled, pending)."""
        remove: list[Obj] = []
        left = self.active_pods
        if is_indexed(self.job):
            remove, left = _duplicate_index_pods(self.active_pods, self.spec["completions"])
        if len(remove) < at_least:
            remove += pods_to_delete(left, left, at_least - len(remove), now())
        return remove

    async def _delete_pods(self, pods: list[Obj], keep_finalizers: bool) -> tuple[int, int, Exception | None]:
        """deleteActivePods (finalizers stay: the status tracking removes them) or deleteJobPods (finalizer first).
        (ready pods deleted, pods deleted, first error)."""
        c = self.controller

        async def one(pod: Obj) -> None:
            if not keep_finalizers and has_tracking_finalizer(pod):
                await c.remove_finalizer(pod)
            await c.pod_control.delete(self.job, pod)

        results = await asyncio.gather(*(one(pod) for pod in pods), return_exceptions=True)
        deleted = deleted_ready = 0
        error: Exception | None = None
        for pod, result in zip(pods, results, strict=True):
            if isinstance(result, BaseException):
                if not keep_finalizers:
                    c.expectations.deletion_observed(self.key, object_key(pod))
                if error is None and isinstance(result, Exception):
                    error = result
                continue
            deleted += 1
            deleted_ready += is_pod_ready(pod)
        return deleted_ready, deleted, error

    def _note_suspension(self, at: datetime) -> bool:
        """The Suspended condition and its events; resuming restarts the activeDeadlineSeconds clock."""
        conditions = self.status.setdefault("conditions", [])
        if is_suspended(self.job):
            if ensure_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", at):
                self.controller.events.emit(self.job, "Normal", "Suspended", "Job suspended")
                return True
        elif ensure_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", at):
            self.controller.events.emit(self.job, "Normal", "Resumed", "Job resumed")
            self.status["startTime"] = format_time(at)
            return True
        return False

    # -- status and finalizers ---------------------------------------------------------------------------------

    async def _track_status_and_remove_finalizers(self, needs_flush: bool, at: datetime) -> None:
        """trackJobStatusAndRemoveFinalizers: record finished pods as uncounted, remove their finalizers, move them
        into the counters, and add the terminal condition once nothing is left uncounted or terminating."""
        job, status = self.job, self.status
        uncounted = status["uncountedTerminatedPods"]
        indexed = is_indexed(job)
        pods = sorted(self.pods, key=completion_index) if indexed else self.pods
        with_finalizer = {
            p["metadata"]["uid"]
            for p in pods
            if has_tracking_finalizer(p) and p["metadata"]["uid"] not in self.expected_removals
        }
        needs_flush |= _count_finalized(status, with_finalizer)
        to_release: list[Obj] = []
        new_indexes: list[int] = []
        reached_max = False
        completions = self.spec.get("completions") or 0
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if not has_tracking_finalizer(pod) or uid in self.expected_removals:
                continue
            failed = is_pod_failed(pod, job)
            if not self._can_remove_finalizer(pod, failed):
                continue
            to_release.append(pod)
            index = completion_index(pod)
            if phase(pod) == "Succeeded" and uid not in self.uncounted_failed:
                if indexed:
                    if 0 <= index < completions and not self.prev_succeeded_indexes.has(index):
                        new_indexes.append(index)
                        needs_flush = True
                elif uid not in self.uncounted_succeeded:
                    uncounted.setdefault("succeeded", []).append(uid)
                    needs_flush = True
            elif (
                (failed or (self.finished is not None and self.finished["type"] != "SuccessCriteriaMet"))
                and uid not in self.uncounted_failed
                and (not indexed or 0 <= index < completions)
                and match_pod_failure_policy(job, pod).counts
            ):
                # once the Job has failed, every pod not yet finished counts as failed
                uncounted.setdefault("failed", []).append(uid)
                needs_flush = True
            recorded = len(uncounted.get("succeeded") or ()) + len(uncounted.get("failed") or ())
            if len(new_indexes) + recorded >= MAX_UNCOUNTED_PODS:
                reached_max = True  # the rest waits for the next sync, so one big Job cannot starve the others
                break
        if indexed:
            self.succeeded_indexes = self.succeeded_indexes.with_indexes(new_indexes)
            completed = str(self.succeeded_indexes)
            needs_flush |= completed != status.get("completedIndexes", "")
            status["succeeded"] = self.succeeded_indexes.total()
            status["completedIndexes"] = completed
            failed_text = str(self.failed_indexes) if self.failed_indexes is not None else None
            if failed_text != status.get("failedIndexes"):
                status["failedIndexes"] = failed_text
                needs_flush = True
        conditions = status.setdefault("conditions", [])
        if self.finished is not None and self.finished["type"] == "FailureTarget":
            conditions.append(self.finished)  # the interim condition goes first, before finalizers go
            needs_flush = True
            self.finished = new_condition(
                "Failed", "True", self.finished.get("reason", ""), self.finished.get("message", ""), at
            )
        if self.finished is not None and self.finished["type"] == "SuccessCriteriaMet":
            if _true_condition(job, "SuccessCriteriaMet") is None:
                conditions.append(self.finished)
                needs_flush = True
            self.finished = new_condition(
                "Complete", "True", self.finished.get("reason", ""), self.finished.get("message", ""), at
            )
        needs_flush = await self._flush_and_release(to_release, with_finalizer, needs_flush)
        finishing = not reached_max and self._enact_finished(at)
        if finishing or needs_flush:
            self.job = await self.controller.write_status(self.job)
            if finishing:
                self._record_finished()

    def _can_remove_finalizer(self, pod: Obj, failed: bool) -> bool:
        if self.job["metadata"].get("deletionTimestamp") or self.finished is not None or phase(pod) == "Succeeded":
            return True
        if not failed:
            return False
        if has_backoff_limit_per_index(self.job):
            delayed = self.delayed_per_index.get(completion_index(pod))
            if delayed is not None and delayed["metadata"]["uid"] == pod["metadata"]["uid"]:
                return False  # kept until its replacement carries the index's failure count
        return True

    async def _flush_and_release(self, pods: list[Obj], with_finalizer: set[str], needs_flush: bool) -> bool:
        """flushUncountedAndRemoveFinalizers; True while a status change is still to be written."""
        c, key = self.controller, self.key
        if needs_flush:
            self.job = await c.write_status(self.job)
            c.backoff[key] = self.new_backoff
            needs_flush = False
        error: BaseException | None = None
        if pods:
            expected = c.finalizer_expectations.setdefault(key, set())
            expected.update(p["metadata"]["uid"] for p in pods)
            results = await asyncio.gather(*(c.remove_finalizer(p) for p in pods), return_exceptions=True)
            for pod, result in zip(pods, results, strict=True):
                if isinstance(result, BaseException):
                    expected.discard(pod["metadata"]["uid"])
                    error = error or result
                else:
                    with_finalizer.discard(pod["metadata"]["uid"])
        if _count_finalized(self.status, with_finalizer):
            needs_flush = True
        if error is not None:
            if needs_flush:
                self.job = await c.write_status(self.job)
            raise error
        return needs_flush

    def _enact_finished(self, at: datetime) -> bool:
        """enactJobFinished: the Complete or Failed condition, once nothing is uncounted or terminating."""
        if self.finished is None:
            return False
        uncounted = self.status.get("uncountedTerminatedPods") or {}
        if uncounted.get("succeeded") or uncounted.get("failed") or self.terminating > 0:
            return False
        finished = self.finished
        conditions = self.status.setdefault("conditions", [])
        ensure_condition(
            conditions, finished["type"], "True", finished.get("reason", ""), finished.get("message", ""), at
        )
        if finished["type"] == "Complete":
            self.status["completionTime"] = (condition(self.job, "Complete") or finished)["lastTransitionTime"]
        return True

    def _record_finished(self) -> None:
        job, finished, events = self.job, self.finished, self.controller.events
        assert finished is not None
        if finished["type"] == "Complete":
            completions = self.spec.get("completions")
            if completions is not None and self.status.get("succeeded", 0) > completions:
                events.emit(
                    job,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            events.emit(job, "Normal", "Completed", "Job completed")
        else:
            events.emit(job, "Warning", finished.get("reason", ""), finished.get("message", ""))


def _duplicate_index_pods(pods: list[Obj], completions: int) -> tuple[list[Obj], list[Obj]]:
    """appendDuplicatedIndexPodsForRemoval: (to remove, to keep) — one pod kept per valid index."""
    remove: list[Obj] = []
    keep: list[Obj] = []
    for index, group in itertools.groupby(sorted(pods, key=completion_index), key=completion_index):
        same = list(group)
        if index == UNKNOWN_INDEX or index >= completions:
            remove += same
            continue
        ranked = pods_to_delete(same, same, len(same) - 1, now()) if len(same) > 1 else []
        remove += ranked
        keep += [p for p in same if p not in ranked]
    return remove, keep


def _count_finalized(status: Obj, with_finalizer: set[str]) -> bool:
    """cleanUncountedPodsWithoutFinalizers: uncounted pods whose finalizer is gone move into the counters."""
    uncounted = status["uncountedTerminatedPods"]
    changed = False
    for kind in ("succeeded", "failed"):
        uids = uncounted.get(kind) or []
        still = [uid for uid in uids if uid in with_finalizer]
        if len(still) != len(uids):
            status[kind] = status.get(kind, 0) + len(uids) - len(still)
            uncounted[kind] = still
            changed = True
    return changed


def _add_index_env(container: Obj) -> None:
    """JOB_COMPLETION_INDEX from the pod's completion-index label (kube's PodIndexLabel, GA)."""
    env = container.setdefault("env", [])
    if any(var.get("name") == COMPLETION_INDEX_ENV for var in env):
        return
    env.append(
        {
            "name": COMPLETION_INDEX_ENV,
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}},
        }
    )


def _true_condition(job: Obj, kind: str) -> Obj | None:
    return condition(job, kind) if condition_true(job, kind) else None


def _failure(reason: str, message: str, at: datetime) -> Obj:
    """newFailureCondition: the interim FailureTarget (Failed follows once the pods are gone)."""
    return new_condition("FailureTarget", "True", reason, message, at)
