"""CronJob controller: creates a CronJob's Jobs on its schedule, like kube-controller-manager's
`pkg/controller/cronjob` (cronjob_controllerv2.go and utils.go).

One sync per CronJob: note finished and vanished Jobs (status.active, lastSuccessfulTime), trim finished Jobs to
the history limits, then, unless suspended, create the Job of the most recent unmet start time (named
`<cronjob>-<scheduled minutes since the epoch>`, so a start time never makes two Jobs) within
startingDeadlineSeconds and as concurrencyPolicy allows, and wake up again at the next start time. Every
Warning and Normal event kube records is recorded here with its reason and wording.

The controller reads time from a `CronClock`: the wall clock, or one that runs N times as fast from the
controller's start (`kube-shim up --cronjob-clock-scale N`), so tests see a `* * * * *` CronJob fire every few
seconds. On a fast clock the times the controller writes (lastScheduleTime, the scheduled-timestamp annotation)
are its own clock's, and an object's creationTimestamp is read on that clock too.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from shim.client import ApiClient, ApiException, Resource, SharedInformerFactory, object_key
from shim.controllers.job import JOBS
from shim.controllers.jobutil import condition_true
from shim.controllers.ownership import controller_of, controller_ref, resolve_controller
from shim.controllers.podutil import parse_time
from shim.controllers.reconciler import Reconciler, namespace_terminating
from shim.machinery.cron import Schedule, ScheduleError, load_zone, parse_standard
from shim.machinery.gofmt import go_quote
from shim.machinery.timefmt import format_time

Obj = dict[str, Any]

CRONJOBS = Resource("batch", "v1", "cronjobs")
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = 0.1  # nextScheduleDelta: wake a little after the start time, for clock skew
MANY_MISSED = 100  # more missed start times than this is kube's "too many"
_UNSUPPORTED_TZ = (
    "CRON_TZ or TZ used in schedule {} is not officially supported, see "
    "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"
)


class Missed(IntEnum):
    """missedSchedulesType: how many start times passed unmet."""

    NONE = 0
    FEW = 1
    MANY = 2


class NotReplaced(Exception):
    """concurrencyPolicy Replace could not delete a running Job (a FailedDelete event says why)."""


class CronClock:
    """The controller's time: the wall clock (`scale` 1), or one that runs `scale` times as fast from now on."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("the clock scale must be positive")
        self.scale = scale
        self._start = datetime.now(UTC)
        self._start_monotonic = time.monotonic()

    def now(self) -> datetime:
        if self.scale == 1:
            return datetime.now(UTC)
        return self._start + timedelta(seconds=(time.monotonic() - self._start_monotonic) * self.scale)

    def reading(self, moment: datetime) -> datetime:
        """A wall-clock time (a creationTimestamp) as this clock shows it."""
        return moment if self.scale == 1 else self._start + (moment - self._start) * self.scale

    def wall_seconds(self, seconds: float) -> float:
        """How long `seconds` on this clock last in real time."""
        return seconds / self.scale


class CronJobController(Reconciler):
    """Watches CronJobs and Jobs; keys are `namespace/name` of a CronJob."""

    def __init__(
        self, client: ApiClient, informers: SharedInformerFactory | None = None, clock: CronClock | None = None
    ) -> None:
        super().__init__(client, "cronjob-controller", informers)
        self.clock = clock or CronClock()
        self.cronjobs = self.watch(CRONJOBS, self._on_cronjob)
        self.jobs = self.watch(JOBS, self._on_job)

    async def sync(self, key: str) -> None:
        """One reconcile: status from the Jobs, history trimmed, the due Job created, the next wake-up set."""
        shared = self.cronjobs.get(key)
        if shared is None:
            return
        meta = shared["metadata"]
        jobs = [
            job
            for job in self.jobs.in_namespace(meta["namespace"])
            if (ref := controller_of(job)) is not None and ref.get("name") == meta["name"]
        ]
        cronjob = copy.deepcopy(shared)
        cronjob.setdefault("status", {})
        changed = await self._trim_history(cronjob, jobs)
        error: Exception | None = None
        try:
            requeue, synced_changes = await self._sync_cronjob(cronjob, jobs)
        except (ApiException, NotReplaced) as exc:
            requeue, synced_changes, error = None, True, exc
        if changed or synced_changes:
            await self._write_status(cronjob)
        if requeue is not None:
            self.queue.add_after(key, self.clock.wall_seconds(requeue))
        if error is not None:
            raise error

    # -- one sync ----------------------------------------------------------------------------------------------

    async def _sync_cronjob(self, cronjob: Obj, jobs: list[Obj]) -> tuple[float | None, bool]:
        """syncCronJob: (seconds to the next wake-up on the controller's clock or None, status changed)."""
        now = self.clock.now()
        changed = await self._note_jobs(cronjob, jobs)
        spec, status = cronjob["spec"], cronjob["status"]
        if cronjob["metadata"].get("deletionTimestamp"):
            return None, changed
        time_zone = spec.get("timeZone")
        if time_zone is not None:
            try:
                load_zone(time_zone)
            except ScheduleError as exc:
                self.events.emit(
                    cronjob, "Warning", "UnknownTimeZone", f"invalid timeZone: {go_quote(time_zone)}: {exc}"
                )
                return None, changed
        if spec.get("suspend"):
            return None, changed
        try:
            schedule = parse_standard(self._schedule_text(cronjob, record=True))
        except ScheduleError as exc:
            message = f"unparseable schedule: {go_quote(spec.get('schedule', ''))} : {exc}"
            self.events.emit(cronjob, "Warning", "UnparseableSchedule", message)
            return None, changed
        try:
            scheduled = self._unmet_start_time(cronjob, now, schedule)
        except ScheduleError as exc:
            message = f"invalid schedule: {spec.get('schedule', '')} : {exc}"
            self.events.emit(cronjob, "Warning", "InvalidSchedule", message)
            return None, changed
        requeue = self._next_wake_up(cronjob, now, schedule)
        if scheduled is None:
            return requeue, changed
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + timedelta(seconds=deadline) < now:
            stamp = scheduled.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")  # RFC1123Z
            self.events.emit(cronjob, "Warning", "MissSchedule", f"Missed scheduled time to start a job: {stamp}")
            return requeue, changed
        name = job_name(cronjob, scheduled)
        active = status.setdefault("active", [])
        if any(ref.get("name") == name for ref in active) or parse_time(status.get("lastScheduleTime")) == scheduled:
            return requeue, changed
        policy = spec.get("concurrencyPolicy")
        if policy == "Forbid" and active:
            self.events.emit(
                cronjob,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return requeue, changed
        if policy == "Replace":
            for ref in list(active):
                job = await self._get_job(cronjob, ref.get("name", ""))
                if job is not None and not await self._delete_job(cronjob, job):
                    raise NotReplaced(f"could not replace job {ref.get('namespace')}/{ref.get('name')}")
                changed = True
        created = await self._create_job(cronjob, scheduled)
        if created is None:
            return None, changed
        active.append(_object_reference(created))
        status["lastScheduleTime"] = format_time(scheduled)
        return requeue, True

    async def _note_jobs(self, cronjob: Obj, jobs: list[Obj]) -> bool:
        """The Jobs' news in status: finished ones leave active (SawCompletedJob), succeeded ones move
        lastSuccessfulTime on, unknown running ones are reported (UnexpectedJob), vanished ones are dropped
        (MissingJob)."""
        status = cronjob["status"]
        changed = False
        children = set()
        for job in jobs:
            uid = job["metadata"].get("uid")
            children.add(uid)
            found = _in_active(cronjob, uid)
            finished = _finished_condition(job)
            if not found and finished is None:
                fresh = await self.client.get(CRONJOBS, cronjob["metadata"]["name"], cronjob["metadata"]["namespace"])
                if _in_active(fresh, uid):
                    cronjob["metadata"]["resourceVersion"] = fresh["metadata"]["resourceVersion"]
                    cronjob["status"] = status = fresh.get("status") or {}
                    continue
                message = f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}"
                self.events.emit(cronjob, "Warning", "UnexpectedJob", message)
            elif finished is not None:
                if found:
                    _remove_active(cronjob, uid)
                    message = f"Saw completed job: {job['metadata']['name']}, condition: {finished}"
                    self.events.emit(cronjob, "Normal", "SawCompletedJob", message)
                    changed = True
                if finished == "Complete":
                    completion = (job.get("status") or {}).get("completionTime")
                    completed, last = parse_time(completion), parse_time(status.get("lastSuccessfulTime"))
                    if completed is not None and (last is None or completed > last):
                        status["lastSuccessfulTime"] = completion
                        changed = True
        for ref in list(status.get("active") or ()):
            if ref.get("uid") in children:
                continue
            # the cache may be behind: only a 404 from the API server proves the Job is gone
            if await self._get_job(cronjob, ref.get("name", "")) is None:
                self.events.emit(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name', '')}")
                _remove_active(cronjob, ref.get("uid"))
                changed = True
        return changed

    async def _trim_history(self, cronjob: Obj, jobs: list[Obj]) -> bool:
        """cleanupFinishedJobs: delete the oldest finished Jobs beyond successful/failedJobsHistoryLimit."""
        spec = cronjob["spec"]
        changed = False
        for outcome, limit_key in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(limit_key)
            if limit is None:
                continue
            finished = [job for job in jobs if _finished_condition(job) == outcome]
            surplus = len(finished) - limit
            if surplus <= 0:
                continue
            finished.sort(key=_by_start_time)
            for job in finished[:surplus]:
                if await self._delete_job(cronjob, job):
                    changed = True
        return changed

    # -- start times -------------------------------------------------------------------------------------------

    def _schedule_text(self, cronjob: Obj, record: bool) -> str:
        """formatSchedule: the schedule with `TZ=<spec.timeZone> ` in front when that zone is known."""
        spec = cronjob["spec"]
        schedule = spec.get("schedule", "")
        if "TZ" in schedule:
            if record:
                self.events.emit(cronjob, "Warning", "UnsupportedSchedule", _UNSUPPORTED_TZ.format(go_quote(schedule)))
            return schedule
        time_zone = spec.get("timeZone")
        if time_zone is None:
            return schedule
        try:
            load_zone(time_zone)
        except ScheduleError:
            return schedule
        return f"TZ={time_zone} {schedule}"

    def _unmet_start_time(self, cronjob: Obj, now: datetime, schedule: Schedule) -> datetime | None:
        """nextScheduleTime: the most recent start time not yet met (None if none); warns about too many."""
        _, recent, missed = self._most_recent_start(cronjob, now, schedule, with_deadline=True)
        if recent is None or recent > now:
            return None
        if missed is Missed.MANY:
            self.events.emit(
                cronjob,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            )
        return recent

    def _next_wake_up(self, cronjob: Obj, now: datetime, schedule: Schedule) -> float | None:
        """nextScheduleTimeDuration: seconds (on the controller's clock) to just after the next start time."""
        try:
            earliest, recent, missed = self._most_recent_start(cronjob, now, schedule, with_deadline=False)
        except ScheduleError:
            recent = now
        else:
            if recent is None:
                recent = earliest if missed is Missed.NONE else now
        upcoming = schedule.next(recent)
        if upcoming is None:
            return None
        return (upcoming - now).total_seconds() + NEXT_SCHEDULE_DELTA

    def _most_recent_start(
        self, cronjob: Obj, now: datetime, schedule: Schedule, with_deadline: bool
    ) -> tuple[datetime, datetime | None, Missed]:
        created = parse_time(cronjob["metadata"].get("creationTimestamp"))
        assert created is not None, "the API server stamps every object's creationTimestamp"
        return most_recent_start(cronjob, self.clock.reading(created), now, schedule, with_deadline)

    # -- API calls ---------------------------------------------------------------------------------------------

    async def _create_job(self, cronjob: Obj, scheduled: datetime) -> Obj | None:
        """Create the Job of `scheduled`; an existing one of ours (created before a lost status write) is taken
        as created. None when there is nothing to add to status."""
        namespace = cronjob["metadata"]["namespace"]
        body = job_from_template(cronjob, scheduled)
        try:
            created = await self.client.create(JOBS, body, namespace)
        except ApiException as exc:
            if namespace_terminating(exc):
                raise
            if exc.status != 409:
                self.events.emit(cronjob, "Warning", "FailedCreate", f"Error creating job: {_message(exc)}")
                raise
            existing = await self.client.get(JOBS, body["metadata"]["name"], namespace)
            ref = controller_of(existing)
            if ref is None or ref.get("uid") != cronjob["metadata"]["uid"]:
                return None  # someone else's Job of that name: they keep their own books
            if _in_active(cronjob, existing["metadata"].get("uid")):
                return None
            self.log.info("job %s/%s already exists", namespace, body["metadata"]["name"])
            return existing
        self.events.emit(cronjob, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        return created

    async def _get_job(self, cronjob: Obj, name: str) -> Obj | None:
        """The Job as the API server has it now; None when it is gone (or the name is empty: status is writable
        by anyone, and an empty name would address the collection)."""
        if not name:
            return None
        try:
            return await self.client.get(JOBS, name, cronjob["metadata"]["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                return None
            self.events.emit(cronjob, "Warning", "FailedGet", f"Get job: {_message(exc)}")
            raise

    async def _delete_job(self, cronjob: Obj, job: Obj) -> bool:
        """deleteJob: the Job and (in the background) its pods, and its place in status.active."""
        meta = job["metadata"]
        try:
            await self.client.delete(JOBS, meta["name"], meta["namespace"], propagationPolicy="Background")
        except ApiException as exc:
            if exc.status != 404:  # already gone is what we wanted
                self.events.emit(cronjob, "Warning", "FailedDelete", f"Deleted job: {_message(exc)}")
                return False
        _remove_active(cronjob, meta.get("uid"))
        self.events.emit(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    async def _write_status(self, cronjob: Obj) -> None:
        body = dict(cronjob)
        status = dict(cronjob["status"])
        if not status.get("active"):
            status.pop("active", None)  # omitempty
        body["status"] = status
        updated = await self.client.replace(CRONJOBS, body, cronjob["metadata"]["namespace"], "status")
        self.cronjobs.observe(updated)  # the next sync may start before the watch brings this write back

    # -- informer events ---------------------------------------------------------------------------------------

    async def _on_cronjob(self, event: str, cronjob: Obj, old: Obj | None) -> None:
        key = object_key(cronjob)
        if event != "MODIFIED" or old is None:
            self.queue.add(key)
            return
        spec, old_spec = cronjob["spec"], old["spec"]
        if (spec.get("schedule"), spec.get("timeZone")) == (old_spec.get("schedule"), old_spec.get("timeZone")):
            self.queue.add(key)
            return
        # a new schedule: wake up at its next start time (an earlier wake-up still queued stays)
        try:
            schedule = parse_standard(self._schedule_text(cronjob, record=False))
        except ScheduleError:
            message = f"unparseable schedule for cronjob: {spec.get('schedule', '')}"
            self.events.emit(cronjob, "Warning", "UnParseableCronJobSchedule", message)
            return
        delay = self._next_wake_up(cronjob, self.clock.now(), schedule)
        if delay is not None:
            self.queue.add_after(key, self.clock.wall_seconds(delay))

    async def _on_job(self, event: str, job: Obj, old: Obj | None) -> None:
        ref = controller_of(job)
        if event == "MODIFIED" and old is not None:
            if job["metadata"].get("resourceVersion") == old["metadata"].get("resourceVersion"):
                return
            old_ref = controller_of(old)
            if old_ref != ref and old_ref is not None:
                self._enqueue_owner(old, old_ref)
        if ref is not None:
            self._enqueue_owner(job, ref)

    def _enqueue_owner(self, job: Obj, ref: Obj) -> None:
        owner = resolve_controller(self.cronjobs, job, ref, "CronJob")
        if owner is not None:
            self.queue.add(object_key(owner))


# -- Jobs from the template ------------------------------------------------------------------------------------


def job_name(cronjob: Obj, scheduled: datetime) -> str:
    """getJobName: `<cronjob>-<scheduled time in minutes since the epoch>`."""
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Obj, scheduled: datetime) -> Obj:
    """getJobFromTemplate2: the template's labels, annotations and spec, the scheduled time (in the CronJob's
    time zone, UTC without one) as an annotation, and the CronJob as controller."""
    template = cronjob["spec"].get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    zone = load_zone(cronjob["spec"].get("timeZone") or "")
    annotations[SCHEDULED_TIMESTAMP] = scheduled.astimezone(zone).isoformat().replace("+00:00", "Z")
    meta: Obj = {"name": job_name(cronjob, scheduled), "annotations": annotations}
    if template_meta.get("labels"):
        meta["labels"] = dict(template_meta["labels"])
    meta["ownerReferences"] = [controller_ref(cronjob, "batch/v1", "CronJob")]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": copy.deepcopy(template.get("spec"))}


def most_recent_start(
    cronjob: Obj, created: datetime, now: datetime, schedule: Schedule, with_deadline: bool
) -> tuple[datetime, datetime | None, Missed]:
    """mostRecentScheduleTime: (when counting starts, the latest start time up to `now` or None, how many were
    missed). Counting starts at lastScheduleTime, else at `created`, or startingDeadlineSeconds ago if later
    (`with_deadline`). ScheduleError for a schedule whose start times are less than a second apart."""
    last = parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
    earliest = last or created
    deadline = cronjob["spec"].get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=deadline))
    first = schedule.next(earliest)
    if first is None:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    if now < first:
        return earliest, None, Missed.NONE
    second = schedule.next(first)
    if second is None:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    if now < second:
        return earliest, first, Missed.NONE
    between = round((second - first).total_seconds())
    if between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    # a rough count, as kube's: how many intervals fit since the first missed start
    missed_count = int((now - first).total_seconds()) // between + 1
    recent: datetime | None = None
    moment = schedule.next(first + timedelta(seconds=(missed_count - 2) * between))
    while moment is not None and moment <= now:
        recent = moment
        moment = schedule.next(moment)
    return earliest, recent, Missed.MANY if missed_count > MANY_MISSED else Missed.FEW


def _finished_condition(job: Obj) -> str | None:
    """getFinishedStatus: "Complete" or "Failed" when the Job has finished."""
    for kind in ("Complete", "Failed"):
        if condition_true(job, kind):
            return kind
    return None


def _by_start_time(job: Obj) -> tuple[bool, datetime, str]:
    """byJobStartTime: started Jobs oldest first, then those not started, each by name."""
    started = parse_time((job.get("status") or {}).get("startTime"))
    return started is None, started or datetime.min.replace(tzinfo=UTC), job["metadata"]["name"]


def _in_active(cronjob: Obj, uid: str | None) -> bool:
    return any(ref.get("uid") == uid for ref in (cronjob.get("status") or {}).get("active") or ())


def _remove_active(cronjob: Obj, uid: str | None) -> None:
    status = cronjob["status"]
    status["active"] = [ref for ref in status.get("active") or () if ref.get("uid") != uid]


def _object_reference(job: Obj) -> Obj:
    """ref.GetReference of a Job, in Go's field order."""
    meta = job["metadata"]
    return {
        "kind": "Job",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "batch/v1",
        "resourceVersion": meta["resourceVersion"],
    }


def _message(exc: ApiException) -> str:
    return str(exc.body.get("message") or exc)
