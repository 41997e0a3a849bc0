"""Job controller: runs a Job's pods to completion, like kube-controller-manager's `pkg/controller/job`.

One sync per Job key (`job_sync.JobSync`: counting, failing or completing the Job, creating and deleting pods,
the status and the `batch.kubernetes.io/job-tracking` finalizers). This module holds what outlives a sync: the
informers and their event handlers (pod events for one Job are batched for a second, as kube does), the
expectations and the per-Job pod failure back-off, the API calls on pods and Job status, deleting a finished
Job once its ttlSecondsAfterFinished expires (kube's ttlafterfinished controller, in the same loop), and
removing the finalizer from orphaned pods (key `orphan-pod:ns/name`).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory, object_key
from shim.controllers.expectations import Expectations
from shim.controllers.job_sync import JobSync
from shim.controllers.jobutil import (
    TRACKING_FINALIZER,
    BackoffRecord,
    finish_time,
    has_tracking_finalizer,
    is_finished,
)
from shim.controllers.ownership import (
    STRATEGIC_MERGE,
    ControllerRefManager,
    controller_of,
    controller_ref,
    index_by_controller,
    owners_selecting,
    recheck_deletion,
    resolve_controller,
)
from shim.controllers.podcontrol import PodControl
from shim.controllers.podutil import now, parse_time
from shim.controllers.reconciler import Reconciler
from shim.machinery.resources import PODS
from shim.machinery.selectors import label_selector_from_object

Obj = dict[str, Any]

JOBS = Resource("batch", "v1", "jobs")
SYNC_BATCH_PERIOD = 1.0  # kube's syncJobBatchPeriod: pod events for one Job are handled together
ORPHAN_POD = "orphan-pod:"  # queue keys of pods whose tracking finalizer nobody else will remove
MANAGED_BY_JOB_CONTROLLER = "kubernetes.io/job-controller"
REMOVE_FINALIZER = {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}


class JobController(Reconciler):
    """Watches Jobs and pods; keys are `namespace/name` of a Job, or ORPHAN_POD + `namespace/name` of a pod."""

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "job-controller", informers)
        self.expectations = Expectations()
        self.pod_control = PodControl(client, self.events)
        self.finalizer_expectations: dict[str, set[str]] = {}  # job key -> pod uids whose finalizer removal is due
        self.backoff: dict[str, BackoffRecord] = {}  # job key -> consecutive pod failures (kube keeps it in memory)
        self._batched: set[str] = set()
        self._wake_ups: dict[str, asyncio.TimerHandle] = {}  # job key -> its next timed sync
        self.jobs = self.watch(JOBS, self._on_job)
        self.pods = self.watch(PODS, self._on_pod)
        index_by_controller(self.pods)

    async def stop(self) -> None:
        for pending in self._wake_ups.values():
            pending.cancel()
        self._wake_ups.clear()
        await super().stop()

    async def sync(self, key: str) -> None:
        """One reconcile: a Job's pods and status, or an orphan pod's finalizer."""
        if key.startswith(ORPHAN_POD):
            await self._release_orphan(key.removeprefix(ORPHAN_POD))
            return
        shared = self.jobs.get(key)
        if shared is None:
            if (pending := self._wake_ups.pop(key, None)) is not None:
                pending.cancel()
            self.expectations.forget(key)
            self.finalizer_expectations.pop(key, None)
            self.backoff.pop(key, None)
            return
        managed_by = shared["spec"].get("managedBy")
        if managed_by is not None and managed_by != MANAGED_BY_JOB_CONTROLLER:
            return  # another controller runs this Job
        if is_finished(shared):
            self.backoff.pop(key, None)
            await self._expire_when_due(key, shared)
            return
        if shared["spec"].get("completionMode") not in ("NonIndexed", "Indexed"):
            self.events.emit(
                shared, "Warning", "UnknownCompletionMode", "Skipped Job sync because completion mode is unknown"
            )
            return
        await JobSync(self, key, copy.deepcopy(shared)).run()

    # -- pods ------------------------------------------------------------------------------------------------

    async def pods_for(self, job: Obj) -> list[Obj]:
        """getPodsForJob: the pods this Job controls after adopting orphans its selector matches (they get the
        tracking finalizer with the owner reference) and releasing the ones it no longer matches."""
        selector = label_selector_from_object(job["spec"].get("selector"))
        claimer = ControllerRefManager(
            self.client,
            PODS,
            job,
            controller_ref(job, "batch/v1", "Job"),
            selector,
            recheck_deletion(self.client, JOBS, job),
            finalizers=(TRACKING_FINALIZER,),
        )
        return await claimer.claim(self.pods.in_namespace(job["metadata"]["namespace"]))

    async def remove_finalizer(self, pod: Obj) -> None:
        """Drop the tracking finalizer from a pod (a 404 is fine)."""
        meta = pod["metadata"]
        try:
            await self.client.patch(
                PODS, meta["name"], REMOVE_FINALIZER, meta["namespace"], content_type=STRATEGIC_MERGE
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def write_status(self, job: Obj) -> Obj:
        """PUT the Job's status; the returned Job (newer resourceVersion) replaces the caller's copy."""
        updated = await self.client.replace(JOBS, _with_go_omissions(job), job["metadata"]["namespace"], "status")
        self.jobs.observe(updated)  # the next sync may start before the watch brings this write back
        return updated

    def enqueue_later(self, key: str, delay: float) -> None:
        """Sync `key` after `delay` seconds, at least the batch period (enqueueSyncJobWithDelay)."""
        self.wake_after(key, max(delay, SYNC_BATCH_PERIOD))

    def wake_after(self, key: str, delay: float) -> None:
        """Sync `key` in `delay` seconds; one wake-up per key, the earliest asked for (as client-go's delaying
        queue keeps one entry per item), so a long-running Job synced often holds one timer, not thousands."""
        loop = asyncio.get_running_loop()
        at = loop.time() + delay
        pending = self._wake_ups.get(key)
        if pending is not None and pending.when() <= at:
            return
        if pending is not None:
            pending.cancel()
        self._wake_ups[key] = loop.call_at(at, self._wake, key)

    def _wake(self, key: str) -> None:
        self._wake_ups.pop(key, None)
        self.queue.add(key)

    # -- ttlSecondsAfterFinished -----------------------------------------------------------------------------

    async def _expire_when_due(self, key: str, job: Obj) -> None:
        """kube's ttlafterfinished controller: a finished Job with a TTL is deleted (Foreground) once it expires."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        finished = finish_time(job)
        if ttl is None or finished is None or job["metadata"].get("deletionTimestamp"):
            return
        left = ttl - (now() - finished).total_seconds()
        if left > 0:
            self.wake_after(key, left)
            return
        meta = job["metadata"]
        try:
            await self.client.delete(
                JOBS,
                meta["name"],
                meta["namespace"],
                propagationPolicy="Foreground",
                preconditions={"uid": meta["uid"]},
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or replaced by a new Job of the same name
                raise

    # -- orphan pods -------------------------------------------------------------------------------------------

    async def _release_orphan(self, pod_key: str) -> None:
        """syncOrphanPod: drop the finalizer of a pod no unfinished Job of ours controls."""
        pod = self.pods.get(pod_key)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_of(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return
            job = self._resolve(pod, ref)
            if job is not None and job["spec"].get("managedBy", MANAGED_BY_JOB_CONTROLLER) != MANAGED_BY_JOB_CONTROLLER:
                return  # another controller's Job: its finalizers are that controller's business
            if job is not None and not is_finished(job):
                return  # adopted: its Job counts it
        await self.remove_finalizer(pod)

    # -- informer events ---------------------------------------------------------------------------------------

    async def _on_job(self, event: str, job: Obj, old: Obj | None) -> None:
        key = object_key(job)
        if event == "DELETED":
            self.queue.add(key)
            self._release_pods_of(job)
            return
        if old is None or job["metadata"].get("generation") != old["metadata"].get("generation"):
            self.queue.add(key)
        else:
            self._enqueue_batched(key)
        if is_finished(job):
            self._release_pods_of(job)  # a backup: the sync removed them when it finished the Job
        start = parse_time((job.get("status") or {}).get("startTime"))
        deadline = job["spec"].get("activeDeadlineSeconds")
        if (
            old is not None
            and start is not None
            and deadline is not None
            and old["spec"].get("activeDeadlineSeconds") != deadline
        ):
            self.wake_after(key, max(deadline - (now() - start).total_seconds(), 0.0))

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            self._pod_gone(pod, final=True)
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_gone(pod, final=False)
            return
        ref = controller_of(pod)
        if old is None:
            if ref is not None:
                job = self._resolve(pod, ref)
                if job is not None:
                    self.expectations.creation_observed(object_key(job))
                    self._enqueue_batched(object_key(job))
                return
            self._orphan_seen(pod)
            return
        old_ref = controller_of(old)
        ref_changed = (old_ref or {}).get("uid") != (ref or {}).get("uid")
        finalizer_removed = not has_tracking_finalizer(pod)
        if ref_changed and old_ref is not None and (job := self._resolve(old, old_ref)) is not None:
            self._finalizer_seen_removed(job, pod, finalizer_removed)
            self._enqueue_batched(object_key(job))
        if ref is not None:
            job = self._resolve(pod, ref)
            if job is not None:
                self._finalizer_seen_removed(job, pod, finalizer_removed)
                self._enqueue_batched(object_key(job))
            return
        if has_tracking_finalizer(pod):
            self.queue.add(ORPHAN_POD + object_key(pod))
        if ref_changed or (old["metadata"].get("labels") or {}) != (pod["metadata"].get("labels") or {}):
            self._enqueue_matching(pod)

    def _pod_gone(self, pod: Obj, final: bool) -> None:
        """deletePod: a deleted or terminating pod no longer counts as active."""
        ref = controller_of(pod)
        job = self._resolve(pod, ref) if ref is not None else None
        if job is None or is_finished(job):
            if has_tracking_finalizer(pod):
                self.queue.add(ORPHAN_POD + object_key(pod))
            return
        key = object_key(job)
        self.expectations.deletion_observed(key, object_key(pod))
        if final or not has_tracking_finalizer(pod):
            self.finalizer_expectations.get(key, set()).discard(pod["metadata"].get("uid", ""))
        self._enqueue_batched(key)

    def _orphan_seen(self, pod: Obj) -> None:
        if has_tracking_finalizer(pod):
            self.queue.add(ORPHAN_POD + object_key(pod))
        self._enqueue_matching(pod)

    def _finalizer_seen_removed(self, job: Obj, pod: Obj, removed: bool) -> None:
        if removed:
            self.finalizer_expectations.get(object_key(job), set()).discard(pod["metadata"].get("uid", ""))

    def _release_pods_of(self, job: Obj) -> None:
        """cleanupPodFinalizers: queue the Job's pods that still carry the finalizer."""
        uid = job["metadata"].get("uid")
        for pod in self.pods.in_namespace(job["metadata"].get("namespace", "")):
            ref = controller_of(pod)
            if ref is not None and ref.get("uid") == uid and has_tracking_finalizer(pod):
                self.queue.add(ORPHAN_POD + object_key(pod))

    def _resolve(self, pod: Obj, ref: Obj) -> Obj | None:
        return resolve_controller(self.jobs, pod, ref, "Job")

    def _enqueue_matching(self, pod: Obj) -> None:
        for job in owners_selecting(self.jobs, pod):
            self._enqueue_batched(object_key(job))

    def _enqueue_batched(self, key: str) -> None:
        """enqueueSyncJobBatched: one sync per Job per batch period however many pod events came."""
        if key in self._batched:
            return
        self._batched.add(key)

        def fire() -> None:
            self._batched.discard(key)
            self.queue.add(key)

        asyncio.get_running_loop().call_later(SYNC_BATCH_PERIOD, fire)


def _with_go_omissions(job: Obj) -> Obj:
    """The Job as Go would encode its status: zero counters, empty strings and empty lists left out."""
    body = dict(job)
    status = dict(job.get("status") or {})
    for key in ("active", "succeeded", "failed"):
        if not status.get(key):
            status.pop(key, None)
    if not status.get("completedIndexes"):
        status.pop("completedIndexes", None)
    if not status.get("conditions"):
        status.pop("conditions", None)
    status["uncountedTerminatedPods"] = {k: v for k, v in (status.get("uncountedTerminatedPods") or {}).items() if v}
    body["status"] = status
    return body
