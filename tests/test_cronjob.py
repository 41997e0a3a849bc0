"""batch/v1 CronJobs in a real `kube-shim up`: the API's defaults, messages and columns, and the CronJob
controller firing Jobs on schedule.

The cluster runs its CronJob controller on a clock 20 times as fast as the wall clock
(`--cronjob-clock-scale 20`), so a `* * * * *` CronJob fires every 3 seconds; its Jobs' pods run on simulated
nodes (tests/workloads.py), where the container's command decides how a pod ends (`true`, `exit 1`,
`sleep 300`). Users' paths go through the real kubectl 1.27 and 1.33 and the official Python client.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch

from shim.apiserver.kinds.batch import cronjob_cells
from shim.apiserver.printers import epoch_us
from shim.client import ApiClient, ApiException, load_kubeconfig
from shim.controllers.cronjob import CRONJOBS, MANY_MISSED, Missed, job_name, most_recent_start
from shim.controllers.job import JOBS
from shim.machinery.cron import ScheduleError, parse_standard
from shim.machinery.resources import EVENTS
from tests.cluster import Cluster, start_cluster
from tests.workloads import cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]
SCALE = 20  # the controller's clock runs this many times as fast: a minute lasts 3 s
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# a few scheduled minutes of the fast clock, with room for a loaded machine
FIRINGS_DEADLINE = 90.0

cluster = cluster_with_fake_nodes(2, extra=("--cronjob-clock-scale", str(SCALE)))


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def cronjob(name: str, command: str = "true", schedule: str = "* * * * *", **spec: Any) -> Obj:
    """A CronJob whose Jobs run one container `sh -c command` on the fake runtime and never retry."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", command]}],
                        }
                    },
                }
            },
            **spec,
        },
    }


def owned_by(jobs: list[Obj], name: str) -> list[Obj]:
    return [
        j
        for j in jobs
        if any(
            ref.get("kind") == "CronJob" and ref["name"] == name for ref in j["metadata"].get("ownerReferences") or ()
        )
    ]


def finished(job: Obj, kind: str = "Complete") -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in (job.get("status") or {}).get("conditions") or ())


async def reasons(api: ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items = (await api.list(EVENTS, namespace))["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


async def wait_event(api: ApiClient, namespace: str, name: str, reason: str, timeout: float = 30.0) -> str:
    """The message of the first event `reason` about `name`."""
    return await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: next(
            (e["message"] for e in events if e["involvedObject"]["name"] == name and e["reason"] == reason), None
        ),
        timeout,
        f"event {reason} for {name}",
    )


async def invalid_message(api: ApiClient, namespace: str, body: Obj) -> str:
    with pytest.raises(ApiException) as refused:
        await api.create(CRONJOBS, body, namespace)
    assert refused.value.status == 422, refused.value.body
    return str(refused.value.body["message"])


# -- kubectl ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_creates_a_cronjob_that_fires_and_lists_it_with_kubes_columns(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    answer = cluster.kubectl(
        "create", "cronjob", "hello", "--image=busybox", "--schedule=*/1 * * * *", "-n", namespace, "-o", "json",
        "--", "true", version=version,
    )  # fmt: skip
    created = json.loads(answer.stdout)  # as created: the controller may write its status any moment now
    spec = created["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert "completions" not in spec["jobTemplate"]["spec"]  # a Job's own defaults come when the Job is made
    assert created["metadata"]["generation"] == 1 and created["status"] == {}
    [job] = await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "hello")[:1], FIRINGS_DEADLINE)
    table = cluster.kubectl("get", "cronjobs", "-n", namespace, version=version).stdout.splitlines()
    assert re.split(r"\s{2,}", table[0].strip()) == [
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"
    ]  # fmt: skip
    cells = re.split(r"\s{2,}", table[1].strip())
    assert cells[:4] == ["hello", "*/1 * * * *", "<none>", "False"] and re.fullmatch(r"\d+", cells[4])
    wide = cluster.kubectl("get", "cj", "hello", "-n", namespace, "-o", "wide", version=version).stdout.splitlines()
    assert re.split(r"\s{2,}", wide[0].strip())[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert re.split(r"\s{2,}", wide[1].strip())[-3:] == ["hello", "busybox", "<none>"]
    minutes = int(job["metadata"]["name"].removeprefix("hello-"))
    scheduled = datetime.fromisoformat(job["metadata"]["annotations"][SCHEDULED])
    assert scheduled.tzinfo == UTC and scheduled.second == 0 and int(scheduled.timestamp()) // 60 == minutes
    [ref] = job["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": "hello",
        "uid": created["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    message = await wait_event(api, namespace, "hello", "SuccessfulCreate")
    assert message.startswith("Created job hello-")
    described = cluster.kubectl("describe", "cronjob", "hello", "-n", namespace, version=version).stdout
    assert re.search(r"Schedule:\s+\*/1 \* \* \* \*", described), described
    assert re.search(r"Concurrency Policy:\s+Allow", described), described
    assert re.search(r"Normal\s+SuccessfulCreate\s+.*Created job hello-", described), described


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_create_job_from_a_cronjob_keeps_the_manual_annotation_and_the_owner(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    body = cronjob("nightly", schedule="0 3 * * *")
    body["spec"]["jobTemplate"]["metadata"] = {"labels": {"app": "nightly"}, "annotations": {"team": "data"}}
    owner = await api.create(CRONJOBS, body, namespace)
    cluster.kubectl("create", "job", "now", "--from=cronjob/nightly", "-n", namespace, version=version)
    job = await api.get(JOBS, "now", namespace)
    annotations = job["metadata"]["annotations"]
    assert annotations["cronjob.kubernetes.io/instantiate"] == "manual" and annotations["team"] == "data"
    assert job["metadata"]["labels"] == {"app": "nightly"}
    [ref] = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("CronJob", "nightly", owner["metadata"]["uid"])
    await watch_until(api, JOBS, namespace, lambda jobs: finished(jobs[0]), what="the manual job Complete")
    if version == "1.27":
        assert "controller" not in ref  # kubectl 1.27 made the CronJob a plain owner, not the controller
        return
    assert ref["controller"] is True
    # the controller did not create it, so it is not in status.active: kube reports it
    message = await wait_event(api, namespace, "nightly", "UnexpectedJob")
    assert message == "Saw a job that the controller did not create or forgot: now"


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_patches_a_cronjob_with_every_patch_type_and_deletes_it_with_its_jobs(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    await api.create(CRONJOBS, cronjob("patched", "sleep 300"), namespace)
    await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "patched"), FIRINGS_DEADLINE)

    def kubectl_patch(kind: str, patch: Any) -> None:
        cluster.kubectl(
            "patch", "cronjob", "patched", "-n", namespace, "--type", kind, "-p", json.dumps(patch), version=version
        )

    kubectl_patch("merge", {"spec": {"suspend": True}})
    kubectl_patch("json", [{"op": "replace", "path": "/spec/successfulJobsHistoryLimit", "value": 5}])
    kubectl_patch("strategic", {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "busybox:1.36"}
    ]}}}}}})  # fmt: skip
    patched = await api.get(CRONJOBS, "patched", namespace)
    assert patched["spec"]["suspend"] is True and patched["spec"]["successfulJobsHistoryLimit"] == 5
    [container] = patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "busybox:1.36" and container["command"] == ["sh", "-c", "sleep 300"]
    assert patched["metadata"]["generation"] == 4
    row = cluster.kubectl("get", "cronjob", "patched", "-n", namespace, "--no-headers", version=version).stdout
    assert re.split(r"\s{2,}", row.strip())[3:5] == ["True", "1"]  # suspended, one Job still active
    cluster.kubectl("delete", "cronjob", "patched", "-n", namespace, version=version)
    await watch_until(api, JOBS, namespace, lambda jobs: not owned_by(jobs, "patched"), what="its jobs gone")


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_applies_and_explains_a_cronjob_while_the_python_client_watches_it(
    cluster: Cluster, namespace: str, version: str
) -> None:
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, version=version, **kw)  # noqa: E731
    batch = k8s.BatchV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    seen: list[tuple[str, str]] = []

    manifest = cronjob("applied", schedule="@hourly")
    created = k("apply", "-f", "-", "-o", "json", stdin=json.dumps(manifest)).stdout
    since = json.loads(created)["metadata"]["resourceVersion"]

    def watch_until_daily() -> None:
        stream = watch.Watch().stream(
            batch.list_namespaced_cron_job, namespace, resource_version=since, timeout_seconds=60
        )
        for event in stream:
            seen.append((event["type"], event["object"].spec.schedule))
            if event["object"].spec.schedule == "@daily":
                return

    watching = asyncio.create_task(asyncio.to_thread(watch_until_daily))
    manifest["spec"]["schedule"] = "@weekly"
    assert k("apply", "-f", "-", stdin=json.dumps(manifest)).stdout == "cronjob.batch/applied configured\n"
    manifest["spec"]["schedule"] = "@daily"
    applied = k("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(manifest))
    assert applied.stdout == "cronjob.batch/applied serverside-applied\n"
    await asyncio.wait_for(watching, 60)
    assert seen == [("MODIFIED", "@weekly"), ("MODIFIED", "@daily")]
    explained = k("explain", "cronjob.spec.schedule").stdout
    assert "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron." in explained


async def test_the_python_client_reads_lists_and_patches_a_cronjob_into_its_own_models(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    await api.create(CRONJOBS, cronjob("modelled", schedule="@daily", timeZone="Europe/Paris"), namespace)
    batch = k8s.BatchV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    read = await asyncio.to_thread(batch.read_namespaced_cron_job, "modelled", namespace)
    assert (read.spec.schedule, read.spec.time_zone, read.spec.concurrency_policy) == (
        "@daily",
        "Europe/Paris",
        "Allow",
    )
    listed = await asyncio.to_thread(batch.list_namespaced_cron_job, namespace)
    assert [c.metadata.name for c in listed.items] == ["modelled"]
    patched = await asyncio.to_thread(
        batch.patch_namespaced_cron_job, "modelled", namespace, {"spec": {"concurrencyPolicy": "Forbid"}}
    )
    assert patched.spec.concurrency_policy == "Forbid"
    status = await asyncio.to_thread(batch.read_namespaced_cron_job_status, "modelled", namespace)
    assert status.status.active is None and status.status.last_schedule_time is None
    await asyncio.to_thread(batch.delete_namespaced_cron_job, "modelled", namespace)
    await watch_until(api, CRONJOBS, namespace, lambda cronjobs: not cronjobs, what="the cronjob gone")


# -- the controller --------------------------------------------------------------------------------------------


async def test_a_cronjob_firing_every_minute_keeps_its_history_to_the_limits(api: ApiClient, namespace: str) -> None:
    await api.create(CRONJOBS, cronjob("often", successfulJobsHistoryLimit=2), namespace)
    # four Jobs made and finished; history keeps the newest two
    seen: set[str] = set()

    def four_made_two_kept(jobs: list[Obj]) -> bool:
        mine = owned_by(jobs, "often")
        seen.update(j["metadata"]["name"] for j in mine)
        return len(seen) >= 4 and len(mine) == 2 and all(finished(j) for j in mine)

    await watch_until(api, JOBS, namespace, four_made_two_kept, FIRINGS_DEADLINE, "4 jobs, 2 kept")
    minutes = sorted(int(name.removeprefix("often-")) for name in seen)
    assert len(set(minutes)) == len(minutes) and minutes == sorted(set(minutes))
    deleted = [m for t, r, m in await reasons(api, namespace, "often") if r == "SuccessfulDelete"]
    assert deleted and all(m.startswith("Deleted job often-") for m in deleted)
    completed = [m for t, r, m in await reasons(api, namespace, "often") if r == "SawCompletedJob"]
    assert any(m.endswith(", condition: Complete") for m in completed)
    status = (await api.get(CRONJOBS, "often", namespace))["status"]
    assert status["lastScheduleTime"].endswith(":00Z") and status["lastSuccessfulTime"]


async def test_failed_jobs_are_kept_to_the_failed_history_limit(api: ApiClient, namespace: str) -> None:
    await api.create(CRONJOBS, cronjob("failing", "exit 1", failedJobsHistoryLimit=1), namespace)
    seen: set[str] = set()

    def three_failed_one_kept(jobs: list[Obj]) -> bool:
        mine = owned_by(jobs, "failing")
        seen.update(j["metadata"]["name"] for j in mine if finished(j, "Failed"))
        return len(seen) >= 3 and len(mine) == 1 and finished(mine[0], "Failed")

    await watch_until(api, JOBS, namespace, three_failed_one_kept, FIRINGS_DEADLINE, "3 failed jobs, 1 kept")
    status = (await api.get(CRONJOBS, "failing", namespace))["status"]
    assert "lastSuccessfulTime" not in status


async def test_forbid_skips_a_start_while_its_job_still_runs(api: ApiClient, namespace: str) -> None:
    await api.create(CRONJOBS, cronjob("single", "sleep 300", concurrencyPolicy="Forbid"), namespace)
    message = await wait_event(api, namespace, "single", "JobAlreadyActive", FIRINGS_DEADLINE)
    assert message == "Not starting job because prior execution is running and concurrency policy is Forbid"
    jobs = owned_by((await api.list(JOBS, namespace))["items"], "single")
    assert len(jobs) == 1 and not finished(jobs[0])
    [active] = (await api.get(CRONJOBS, "single", namespace))["status"]["active"]
    assert active == {
        "kind": "Job",
        "namespace": namespace,
        "name": jobs[0]["metadata"]["name"],
        "uid": jobs[0]["metadata"]["uid"],
        "apiVersion": "batch/v1",
        "resourceVersion": active["resourceVersion"],
    }


async def test_an_active_job_deleted_by_hand_goes_missing_and_the_next_start_runs(
    api: ApiClient, namespace: str
) -> None:
    await api.create(CRONJOBS, cronjob("gone", "sleep 300", concurrencyPolicy="Forbid"), namespace)
    [first] = await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "gone")[:1], FIRINGS_DEADLINE)
    await api.delete(JOBS, first["metadata"]["name"], namespace, propagationPolicy="Background")
    message = await wait_event(api, namespace, "gone", "MissingJob", FIRINGS_DEADLINE)
    assert message == f"Active job went missing: {first['metadata']['name']}"
    # Forbid no longer holds it back: the next start time makes a new Job
    [second] = await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "gone")[:1], FIRINGS_DEADLINE)
    assert second["metadata"]["name"] != first["metadata"]["name"]


async def test_a_status_naming_jobs_that_do_not_exist_is_cleaned_up(api: ApiClient, namespace: str) -> None:
    created = await api.create(CRONJOBS, cronjob("scribbled", suspend=True), namespace)
    # anyone may write status: a reference without a name, and one to a Job that never was
    nameless = {"kind": "Job", "uid": "u-1"}
    created["status"] = {"active": [nameless, {"kind": "Job", "name": "never", "namespace": namespace, "uid": "u-2"}]}
    await api.replace(CRONJOBS, created, namespace, "status")
    await watch_until(
        api,
        CRONJOBS,
        namespace,
        lambda cronjobs: not (cronjobs[0].get("status") or {}).get("active"),
        what="status.active emptied",
    )
    await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: (
            {e["message"] for e in events if e["reason"] == "MissingJob"}
            == {"Active job went missing: ", "Active job went missing: never"}
        ),
        what="a MissingJob event for each",
    )


async def test_replace_deletes_the_running_job_and_starts_the_next(api: ApiClient, namespace: str) -> None:
    await api.create(CRONJOBS, cronjob("fresh", "sleep 300", concurrencyPolicy="Replace"), namespace)
    [first] = await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "fresh")[:1], FIRINGS_DEADLINE)
    first_name = first["metadata"]["name"]

    def replaced(cronjobs: list[Obj]) -> list[Obj] | None:
        active = (cronjobs[0].get("status") or {}).get("active") or []
        return active if len(active) == 1 and active[0]["name"] != first_name else None

    [now_active] = await watch_until(api, CRONJOBS, namespace, replaced, FIRINGS_DEADLINE, "a replacement")
    assert int(now_active["name"].removeprefix("fresh-")) > int(first_name.removeprefix("fresh-"))
    assert ("Normal", "SuccessfulDelete", f"Deleted job {first_name}") in await reasons(api, namespace, "fresh")
    await watch_until(
        api, JOBS, namespace, lambda jobs: all(j["metadata"]["name"] != first_name for j in jobs), what="first gone"
    )


async def test_a_suspended_cronjob_starts_nothing_while_another_keeps_firing(api: ApiClient, namespace: str) -> None:
    await api.create(CRONJOBS, cronjob("paused", suspend=True), namespace)
    await api.create(CRONJOBS, cronjob("clock"), namespace)
    # the sibling on the same schedule is the clock: three of its start times pass
    await watch_until(api, JOBS, namespace, lambda jobs: len(owned_by(jobs, "clock")) >= 3, FIRINGS_DEADLINE)
    assert not owned_by((await api.list(JOBS, namespace))["items"], "paused")
    await api.patch(CRONJOBS, "paused", {"spec": {"suspend": False}}, namespace)
    await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "paused"), FIRINGS_DEADLINE, "resumed")


async def test_a_time_zone_names_the_scheduled_time_in_that_zone(api: ApiClient, namespace: str) -> None:
    await api.create(CRONJOBS, cronjob("tokyo", timeZone="Asia/Tokyo"), namespace)
    [job] = await watch_until(api, JOBS, namespace, lambda jobs: owned_by(jobs, "tokyo")[:1], FIRINGS_DEADLINE)
    stamp = job["metadata"]["annotations"][SCHEDULED]
    assert stamp.endswith("+09:00"), stamp
    assert job["metadata"]["name"] == f"tokyo-{int(datetime.fromisoformat(stamp).timestamp()) // 60}"


async def test_a_cronjob_resumed_after_more_than_a_hundred_missed_starts_warns_and_runs_the_latest(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # a clock 3600 times as fast: a minute passes every 1/60 s, so a hundred start times go by in under 2 s
    racing = start_cluster(
        tmp_path_factory.mktemp("cron-3600"), nodes=("--runtime", "fake", "--nodes", "1"),
        extra=("--cronjob-clock-scale", "3600"),
    )  # fmt: skip
    try:
        racing.kubectl("create", "namespace", "late")
        racing.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "late", "--timeout=60s")
        async with ApiClient(load_kubeconfig(racing.kubeconfig)) as api:
            sleeper = cronjob("sleeper", "sleep 300", concurrencyPolicy="Forbid", suspend=True)
            await api.create(CRONJOBS, sleeper, "late")
            # the witness skips every start time while its first Job runs, one JobAlreadyActive each
            await api.create(CRONJOBS, cronjob("witness", "sleep 300", concurrencyPolicy="Forbid"), "late")
            await watch_until(
                api,
                EVENTS,
                "late",
                lambda events: any(e["reason"] == "JobAlreadyActive" and e["count"] > MANY_MISSED for e in events),
                FIRINGS_DEADLINE,
                "the witness to skip more than a hundred start times",
            )
            await api.patch(CRONJOBS, "sleeper", {"spec": {"suspend": False}}, "late")
            message = await wait_event(api, "late", "sleeper", "TooManyMissedTimes")
            assert message == (
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            )
            [job] = await watch_until(api, JOBS, "late", lambda jobs: owned_by(jobs, "sleeper")[:1])
            # only the latest start time runs, not the hundred missed ones
            assert len(owned_by((await api.list(JOBS, "late"))["items"], "sleeper")) == 1
            assert job["metadata"]["annotations"][SCHEDULED]
    finally:
        racing.stop()


# -- the API's answers -----------------------------------------------------------------------------------------


async def test_bad_schedules_and_time_zones_get_kubes_messages(api: ApiClient, namespace: str) -> None:
    says = {
        "* * * *": 'spec.schedule: Invalid value: "* * * *": expected exactly 5 fields, found 4: [* * * *]',
        "61 * * * *": 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61',
        "@fortnightly": 'spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly',
        "TZ=UTC * * * * *": (
            'spec.schedule: Invalid value: "TZ=UTC * * * * *": cannot use TZ or CRON_TZ in schedule, '
            "use timeZone field instead"
        ),
    }
    for schedule, message in says.items():
        assert await invalid_message(api, namespace, cronjob("bad", schedule=schedule)) == (
            f'CronJob.batch "bad" is invalid: {message}'
        )
    assert await invalid_message(api, namespace, cronjob("bad", timeZone="Mars/Olympus")) == (
        'CronJob.batch "bad" is invalid: spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'
    )
    long_name = "n" * 53
    assert await invalid_message(api, namespace, cronjob(long_name)) == (
        f'CronJob.batch "{long_name}" is invalid: metadata.name: Invalid value: "{long_name}": '
        "must be no more than 52 characters"
    )
    both = cronjob("bad", concurrencyPolicy="Sometimes", startingDeadlineSeconds=-1)
    both["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    message = await invalid_message(api, namespace, both)
    assert 'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"' in (
        message
    )
    assert "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0" in message
    assert 'spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"' in (
        message
    )
    # @every and the other descriptors are accepted, as kube's parser accepts them
    for schedule in ("@every 90s", "@hourly", "0 9 * * MON-FRI", "*/15 0-6 1,15 jan-jun ?"):
        await api.create(CRONJOBS, cronjob(f"ok-{abs(hash(schedule)) % 10**8}", schedule=schedule), namespace)


# -- start times -----------------------------------------------------------------------------------------------


def test_next_start_times_follow_robfig_cron() -> None:
    at = datetime(2026, 12, 7, 18, 17, 30, tzinfo=UTC)  # a Monday
    expected = {
        "* * * * *": datetime(2026, 12, 7, 18, 18, tzinfo=UTC),
        "*/5 * * * *": datetime(2026, 12, 7, 18, 20, tzinfo=UTC),
        "@weekly": datetime(2026, 12, 13, tzinfo=UTC),
        "0 9 * * mon-fri": datetime(2026, 12, 8, 9, tzinfo=UTC),
        # day of month and day of week, both restricted: either matches
        "0 0 1,15 * 3": datetime(2026, 12, 9, tzinfo=UTC),
        "@every 90s": datetime(2026, 12, 7, 18, 19, tzinfo=UTC),
    }
    for spec, when in expected.items():
        assert parse_standard(spec).next(at) == when, spec
    # 02:30 does not exist in New York on 2026-03-08 (clocks go from 02:00 to 03:00): that year is skipped
    spring = parse_standard("TZ=America/New_York 30 2 8 3 *").next(datetime(2026, 1, 1, tzinfo=UTC))
    assert spring == datetime(2027, 3, 8, 7, 30, tzinfo=UTC)


def test_schedule_errors_are_worded_as_robfig_crons() -> None:
    says = {
        "": "empty spec string",
        "*/0 * * * *": "step of range should be a positive number: */0",
        "5-1 * * * *": "beginning of range (5) beyond end of range (1): 5-1",
        "x * * * *": 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax',
        "* * * * 7": "end of range (7) above maximum (6): 7",
        "@every 5d": 'failed to parse duration @every 5d: time: unknown unit "d" in duration "5d"',
        # more than Go's int64 nanoseconds hold
        "@every 99999999999h": 'failed to parse duration @every 99999999999h: time: invalid duration "99999999999h"',
    }
    for spec, message in says.items():
        with pytest.raises(ScheduleError) as refused:
            parse_standard(spec)
        assert str(refused.value) == message


def test_more_than_a_hundred_missed_start_times_are_many_and_only_the_latest_runs() -> None:
    now = datetime(2026, 12, 7, 18, 17, 30, tzinfo=UTC)
    schedule = parse_standard("* * * * *")
    cron: Obj = {"metadata": {"name": "late"}, "spec": {}, "status": {}}
    _, recent, missed = most_recent_start(cron, now - timedelta(hours=3), now, schedule, with_deadline=True)
    assert (recent, missed) == (datetime(2026, 12, 7, 18, 17, tzinfo=UTC), Missed.MANY)
    _, recent, missed = most_recent_start(cron, now - timedelta(minutes=5), now, schedule, with_deadline=True)
    assert (recent, missed) == (datetime(2026, 12, 7, 18, 17, tzinfo=UTC), Missed.FEW)
    cron["spec"]["startingDeadlineSeconds"] = 20  # 18:17:00 is 30 s ago: too late to start
    assert most_recent_start(cron, now - timedelta(hours=3), now, schedule, with_deadline=True)[1] is None
    assert job_name(cron, datetime(2026, 12, 7, 18, 17, tzinfo=UTC)) == "late-29944457"  # 1796667420 s since the epoch


@pytest.mark.parametrize("scale", ["0", "-2", "fast", "3601"])
def test_a_clock_scale_out_of_range_is_refused_before_anything_starts(scale: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shim.cli", "up", "--cronjob-clock-scale", scale],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "argument --cronjob-clock-scale: " in result.stderr, result.stderr


def test_a_cronjob_row_prints_as_kubes_print_cronjob() -> None:
    now = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    row = {
        "metadata": {"name": "report", "creationTimestamp": "2026-12-05T18:00:00Z"},
        "spec": {
            "schedule": "0 6 * * *",
            "timeZone": "Europe/Berlin",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "r", "image": "busybox"}]}}}},
        },
        "status": {"active": [{"name": "a"}, {"name": "b"}], "lastScheduleTime": "2026-12-07T17:58:30Z"},
    }
    assert cronjob_cells(row, epoch_us(now)) == [
        "report", "0 6 * * *", "Europe/Berlin", "<unset>", 2, "90s", "2d", "r", "busybox", "<none>"
    ]  # fmt: skip
    row["spec"]["suspend"] = True
    del row["spec"]["timeZone"], row["status"]["lastScheduleTime"]
    assert cronjob_cells(row, epoch_us(now))[2:6] == ["<none>", "True", 2, "<none>"]
