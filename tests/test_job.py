"""batch/v1 Jobs in a real `kube-shim up`: the API's defaults and messages, and the Job controller's behaviour.

The cluster has simulated nodes (tests/workloads.py): the real scheduler binds the pods and the node agents run
them on the fake runtime, where a container's command decides how it ends (`exit 3`, `sleep 1`). Users' paths go
through the real kubectl 1.27 and 1.33 and the official Python client.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from shim.apiserver.kinds.batch import job_cells
from shim.apiserver.printers import epoch_us
from shim.client import ApiClient, ApiException, SharedInformer, load_kubeconfig
from shim.controllers.job import JOBS, JobController
from shim.controllers.jobutil import (
    Intervals,
    PolicyMatch,
    first_pending_indexes,
    match_pod_failure_policy,
    match_success_policy,
    pod_name_prefix,
)
from shim.machinery.resources import EVENTS, PODS
from tests.cluster import Cluster, start_cluster
from tests.workloads import cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]
TRACKING = "batch.kubernetes.io/job-tracking"
INDEX = "batch.kubernetes.io/job-completion-index"
# pod failure back-off starts at 10 s: waits that include a replacement allow for it
REPLACEMENT_DEADLINE = 60.0

cluster = cluster_with_fake_nodes()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def job(name: str, command: str = "true", **spec: Any) -> Obj:
    """A Job whose one container runs `sh -c command` on the fake runtime."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", command]}],
                }
            },
            **spec,
        },
    }


def true_condition(obj: Obj, kind: str) -> Obj | None:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind and c["status"] == "True"),
        None,
    )


async def wait_job(api: ApiClient, namespace: str, name: str, condition: str, timeout: float = 30.0) -> Obj:
    """The Job once its `condition` is True."""
    return await watch_until(
        api,
        JOBS,
        namespace,
        lambda jobs: next((j for j in jobs if j["metadata"]["name"] == name and true_condition(j, condition)), None),
        timeout,
        f"job {name} {condition}",
    )


def pods_of(pods: list[Obj], name: str) -> list[Obj]:
    return [p for p in pods if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == name]


async def events_for(api: ApiClient, namespace: str, name: str) -> list[tuple[str, str, str]]:
    items = (await api.list(EVENTS, namespace))["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


async def wait_event(api: ApiClient, namespace: str, name: str, reason: str) -> tuple[str, str, str]:
    return await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: next(
            (
                (e["type"], e["reason"], e["message"])
                for e in events
                if e["involvedObject"]["name"] == name and e["reason"] == reason
            ),
            None,
        ),
        what=f"event {reason} for {name}",
    )


# -- kubectl ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_creates_waits_for_and_lists_a_job(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    cluster.kubectl("create", "job", "hello", "--image=busybox", "-n", namespace, "--", "true", version=version)
    waited = cluster.kubectl(
        "wait", "--for=condition=complete", "job/hello", "-n", namespace, "--timeout=30s", version=version
    )
    assert waited.stdout == "job.batch/hello condition met\n"
    table = cluster.kubectl("get", "jobs", "-n", namespace, "-o", "wide", version=version).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    cells = table[1].split()
    assert cells[:3] == ["hello", "Complete", "1/1"] and cells[5:7] == ["hello", "busybox"]
    assert re.fullmatch(r"\d+s", cells[3]) and re.fullmatch(
        r"batch.kubernetes.io/controller-uid=[0-9a-f-]{36}", cells[7]
    )
    done = await wait_job(api, namespace, "hello", "Complete")
    assert [c["type"] for c in done["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert {c["reason"] for c in done["status"]["conditions"]} == {"CompletionsReached"}
    assert done["status"]["succeeded"] == 1 and done["status"]["completionTime"] >= done["status"]["startTime"]
    assert done["status"]["uncountedTerminatedPods"] == {} and done["status"]["ready"] == 0
    events = await events_for(api, namespace, "hello")
    assert ("Normal", "Completed", "Job completed") in events
    assert any(
        reason == "SuccessfulCreate" and message.startswith("Created pod: hello-") for _, reason, message in events
    )


@pytest.mark.parametrize("version", ["1.27", "1.33"])
async def test_kubectl_delete_job_takes_its_pods_with_it(
    cluster: Cluster, api: ApiClient, namespace: str, version: str
) -> None:
    await api.create(JOBS, job("sleepy", "sleep 300", parallelism=2, completions=2), namespace)
    await watch_until(api, PODS, namespace, lambda pods: len(pods_of(pods, "sleepy")) == 2, what="2 pods")
    cluster.kubectl("delete", "job", "sleepy", "-n", namespace, version=version)
    await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "sleepy"), what="no pods")


async def test_a_python_client_delete_orphans_the_pods_as_batch_v1_does(
    cluster: Cluster, api: ApiClient, namespace: str
) -> None:
    await api.create(JOBS, job("kept", "sleep 300"), namespace)
    await watch_until(api, JOBS, namespace, lambda jobs: (jobs[0].get("status") or {}).get("active") == 1)
    batch = k8s.BatchV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    read = await asyncio.to_thread(batch.read_namespaced_job_status, "kept", namespace)  # the client's own models
    assert (read.spec.completions, read.spec.completion_mode, read.status.ready) == (1, "NonIndexed", 0)
    assert read.spec.template.metadata.labels["job-name"] == "kept"
    await asyncio.to_thread(batch.delete_namespaced_job, "kept", namespace)  # no propagationPolicy
    await watch_until(api, JOBS, namespace, lambda jobs: not jobs, what="the job gone")
    [pod] = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: [p for p in pods_of(pods, "kept") if not p["metadata"].get("ownerReferences")],
        what="the pod orphaned",
    )
    assert not pod["metadata"].get("deletionTimestamp")
    await watch_until(
        api, PODS, namespace, lambda pods: all(not p["metadata"].get("finalizers") for p in pods), what="untracked"
    )


# -- the API ---------------------------------------------------------------------------------------------------


async def test_a_job_is_defaulted_with_a_generated_selector_and_labels(api: ApiClient, namespace: str) -> None:
    created = await api.create(JOBS, job("plain"), namespace)
    uid = created["metadata"]["uid"]
    generated = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "plain",
        "controller-uid": uid,
        "job-name": "plain",
    }
    assert created["metadata"]["labels"] == generated
    spec = created["spec"]
    assert spec["template"]["metadata"]["labels"] == generated
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert {k: spec[k] for k in ("completions", "parallelism", "backoffLimit", "completionMode", "suspend")} == {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
    }
    assert (spec["manualSelector"], spec["podReplacementPolicy"]) == (False, "TerminatingOrFailed")
    assert created["status"] == {} and created["metadata"]["generation"] == 1


async def test_a_job_whose_pods_would_restart_forever_is_refused_with_kubes_message(
    api: ApiClient, namespace: str
) -> None:
    body = job("forever")
    del body["spec"]["template"]["spec"]["restartPolicy"]
    with pytest.raises(ApiException) as info:
        await api.create(JOBS, body, namespace)
    assert info.value.status == 422
    assert info.value.body["message"] == (
        'Job.batch "forever" is invalid: spec.template.spec.restartPolicy: Required value: '
        'valid values: "OnFailure", "Never"'
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"completionMode": "Indexed", "parallelism": 2},
            "spec.completions: Required value: when completion mode is Indexed",
        ),
        ({"backoffLimitPerIndex": 1}, "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"),
        (
            {"podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]}},
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
        ),
        (
            {
                "podFailurePolicy": {
                    "rules": [{"action": "FailIndex", "onPodConditions": [{"type": "DisruptionTarget"}]}]
                }
            },
            'spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": '
            "requires the backoffLimitPerIndex to be set",
        ),
        (
            {"podFailurePolicy": {"rules": [{"action": "Ignore"}]}},
            "spec.podFailurePolicy.rules[0]: Invalid value: "
            "specifying one of OnExitCodes and OnPodConditions is required",
        ),
        (
            {
                "completionMode": "Indexed",
                "completions": 3,
                "successPolicy": {"rules": [{"succeededIndexes": "2-1"}, {"succeededCount": 4}]},
            },
            'spec.successPolicy.rules[0].succeededIndexes: Invalid value: "2-1": error parsing succeededIndexes: '
            "non-increasing order, previous: 2, current: 1, spec.successPolicy.rules[1].succeededCount: Invalid "
            "value: 4: must be less than or equal to 3 (the number of specified completions)",
        ),
        (
            {"selector": {"matchLabels": {"app": "x"}}},
            'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x", '
            '"batch.kubernetes.io/controller-uid":"{uid}"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
            "`selector` not auto-generated",
        ),
    ],
)
async def test_invalid_jobs_get_kubes_field_errors(api: ApiClient, namespace: str, spec: Obj, message: str) -> None:
    body = job("bad", **spec)
    with pytest.raises(ApiException) as info:
        await api.create(JOBS, body, namespace)
    assert info.value.status == 422
    text = info.value.body["message"]
    if "{uid}" in message:  # the generated selector names the new object's uid
        message = re.escape(message).replace(re.escape("{uid}"), "[0-9a-f-]{36}")
        assert re.search(message, text), text
    else:
        assert message in text, text


async def test_a_running_jobs_completions_and_template_are_fixed(api: ApiClient, namespace: str) -> None:
    created = await api.create(JOBS, job("fixed", "sleep 300"), namespace)
    changed = copy.deepcopy(created)
    changed["spec"]["completions"] = 3
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    with pytest.raises(ApiException) as info:
        await api.replace(JOBS, changed, namespace)
    causes = {c["field"]: c["message"] for c in info.value.body["details"]["causes"]}
    assert causes["spec.completions"] == "Invalid value: 3: field is immutable"
    assert causes["spec.template"].endswith("field is immutable")


async def test_a_field_selector_finds_jobs_by_their_successes(cluster: Cluster, api: ApiClient, namespace: str) -> None:
    await api.create(JOBS, job("one"), namespace)
    await wait_job(api, namespace, "one", "Complete")
    out = cluster.kubectl("get", "jobs", "-n", namespace, "--field-selector=status.successful=1", "-o", "name")
    assert out.stdout == "job.batch/one\n"
    none = cluster.kubectl("get", "jobs", "-n", namespace, "--field-selector=status.successful=0", "-o", "name")
    assert none.stdout == ""


# -- the controller --------------------------------------------------------------------------------------------


async def test_parallelism_caps_the_running_pods_until_all_completions_succeed(api: ApiClient, namespace: str) -> None:
    most = 0

    async def count(event: str, pod: Obj, old: Obj | None) -> None:
        nonlocal most
        running = [p for p in watcher.list() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        most = max(most, len(running))

    watcher = SharedInformer(api, PODS, namespace=namespace)
    watcher.add_event_handler(count)
    watcher.start()
    try:
        await watcher.synced.wait()
        await api.create(JOBS, job("batch", "sleep 1", completions=5, parallelism=2), namespace)
        done = await wait_job(api, namespace, "batch", "Complete", 60)
    finally:
        await watcher.stop()
    assert most == 2
    assert done["status"]["succeeded"] == 5 and "failed" not in done["status"]
    pods = pods_of((await api.list(PODS, namespace))["items"], "batch")
    assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all(TRACKING not in (p["metadata"].get("finalizers") or ()) for p in pods)  # counted, then released


async def test_a_running_pod_carries_the_tracking_finalizer_and_the_job_counts_it_active(
    api: ApiClient, namespace: str
) -> None:
    await api.create(JOBS, job("tracked", "sleep 300"), namespace)
    [pod] = await watch_until(
        api, PODS, namespace, lambda pods: [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    )
    assert pod["metadata"]["finalizers"] == [TRACKING]
    [ref] = pod["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == ("Job", "tracked", True, True)
    await watch_until(api, JOBS, namespace, lambda jobs: (jobs[0].get("status") or {}).get("active") == 1)


async def test_an_indexed_job_gives_each_pod_its_index_hostname_and_env(api: ApiClient, namespace: str) -> None:
    body = job("idx", "true", completionMode="Indexed", completions=3, parallelism=3)
    body["spec"]["template"]["spec"]["subdomain"] = "workers"  # with a headless Service, `idx-0.workers` resolves
    await api.create(JOBS, body, namespace)
    done = await wait_job(api, namespace, "idx", "Complete")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    pods = sorted(pods_of((await api.list(PODS, namespace))["items"], "idx"), key=lambda p: p["metadata"]["name"])
    for index, pod in enumerate(pods):
        meta, spec = pod["metadata"], pod["spec"]
        assert meta["name"].startswith(f"idx-{index}-")
        assert meta["annotations"][INDEX] == str(index) and meta["labels"][INDEX] == str(index)
        assert (spec["hostname"], spec["subdomain"]) == (f"idx-{index}", "workers")
        assert spec["containers"][0]["env"] == [
            {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.labels['{INDEX}']"}},
            }
        ]


async def test_failed_pods_are_replaced_after_a_back_off_until_the_backoff_limit(
    api: ApiClient, namespace: str
) -> None:
    await api.create(JOBS, job("flaky", "exit 1", backoffLimit=1), namespace)
    failed = await wait_job(api, namespace, "flaky", "Failed", REPLACEMENT_DEADLINE)
    status = failed["status"]
    assert status["failed"] == 2 and "active" not in status and "completionTime" not in status
    target, final = (true_condition(failed, kind) for kind in ("FailureTarget", "Failed"))
    assert target is not None and final is not None
    for condition in (target, final):
        assert (condition["reason"], condition["message"]) == (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    pods = sorted(
        pods_of((await api.list(PODS, namespace))["items"], "flaky"), key=lambda p: p["metadata"]["creationTimestamp"]
    )
    assert len(pods) == 2
    first_end = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    gap = _seconds(pods[1]["metadata"]["creationTimestamp"]) - _seconds(first_end)
    assert gap >= 9, f"the replacement came {gap}s after the failure, before kube's 10 s back-off"
    assert await wait_event(api, namespace, "flaky", "BackoffLimitExceeded") == (
        "Warning",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )


async def test_a_fail_job_rule_ends_the_job_at_the_first_matching_exit_code(api: ApiClient, namespace: str) -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]}
    await api.create(JOBS, job("fatal", "exit 42", podFailurePolicy=policy), namespace)
    failed = await wait_job(api, namespace, "fatal", "Failed")
    [pod] = pods_of((await api.list(PODS, namespace))["items"], "fatal")
    condition = true_condition(failed, "Failed")
    assert condition is not None and condition["reason"] == "PodFailurePolicy"
    assert condition["message"] == (
        f"Container c for pod {namespace}/{pod['metadata']['name']} failed with exit code 42 matching FailJob rule "
        "at index 0"
    )
    assert failed["spec"]["podReplacementPolicy"] == "Failed"  # the default once a podFailurePolicy is set


async def test_ignored_failures_do_not_count_and_the_deadline_still_ends_the_job(
    api: ApiClient, namespace: str
) -> None:
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
    await api.create(
        JOBS, job("ignored", "exit 3", podFailurePolicy=policy, backoffLimit=0, activeDeadlineSeconds=3), namespace
    )
    failed = await wait_job(api, namespace, "ignored", "Failed")
    condition = true_condition(failed, "Failed")
    assert condition is not None
    assert (condition["reason"], condition["message"]) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    assert "failed" not in failed["status"]  # the exit code 3 failures were ignored, so backoffLimit 0 held


async def test_backoff_limit_per_index_fails_the_indexes_that_used_it_up(api: ApiClient, namespace: str) -> None:
    await api.create(
        JOBS,
        job("perindex", "exit 1", completionMode="Indexed", completions=2, parallelism=2, backoffLimitPerIndex=0),
        namespace,
    )
    failed = await wait_job(api, namespace, "perindex", "Failed")
    assert failed["spec"]["backoffLimit"] == 2**31 - 1  # defaulted so that only the per-index limit applies
    assert failed["status"]["failedIndexes"] == "0,1"
    condition = true_condition(failed, "Failed")
    assert condition is not None and (condition["reason"], condition["message"]) == (
        "FailedIndexes",
        "Job has failed indexes",
    )
    pods = pods_of((await api.list(PODS, namespace))["items"], "perindex")
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] for p in pods) == [
        "0",
        "0",
    ]


async def test_max_failed_indexes_ends_the_job_at_the_first_index_too_many(api: ApiClient, namespace: str) -> None:
    spec = {"completionMode": "Indexed", "completions": 3, "parallelism": 1, "backoffLimitPerIndex": 0}
    await api.create(JOBS, job("maxed", "exit 1", maxFailedIndexes=0, **spec), namespace)
    failed = await wait_job(api, namespace, "maxed", "Failed")
    condition = true_condition(failed, "Failed")
    assert condition is not None and condition["reason"] == "MaxFailedIndexesExceeded"
    assert failed["status"]["failedIndexes"] == "0"


async def test_restarts_of_an_on_failure_pod_count_against_the_backoff_limit(api: ApiClient, namespace: str) -> None:
    body = job("crashy", "exit 1", backoffLimit=1)
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    await api.create(JOBS, body, namespace)
    failed = await wait_job(api, namespace, "crashy", "Failed", REPLACEMENT_DEADLINE)
    condition = true_condition(failed, "Failed")
    assert condition is not None and condition["reason"] == "BackoffLimitExceeded"
    created = [e for e in await events_for(api, namespace, "crashy") if e[1] == "SuccessfulCreate"]
    assert len(created) == 1  # the kubelet restarted the container; the Job never replaced the pod


async def test_a_fail_index_rule_fails_only_that_index_without_retries(api: ApiClient, namespace: str) -> None:
    policy = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [5]}}]}
    spec = {"completionMode": "Indexed", "completions": 2, "parallelism": 2, "backoffLimitPerIndex": 3}
    await api.create(JOBS, job("failindex", "exit 5", podFailurePolicy=policy, **spec), namespace)
    failed = await wait_job(api, namespace, "failindex", "Failed")
    assert failed["status"]["failedIndexes"] == "0,1" and failed["status"]["failed"] == 2
    assert len(pods_of((await api.list(PODS, namespace))["items"], "failindex")) == 2  # no retry of either index


async def test_a_failed_index_is_retried_after_its_own_back_off_carrying_its_failure_count(
    api: ApiClient, namespace: str
) -> None:
    spec = {"completionMode": "Indexed", "completions": 1, "backoffLimitPerIndex": 1}
    await api.create(JOBS, job("retried", "exit 1", **spec), namespace)
    failed = await wait_job(api, namespace, "retried", "Failed", REPLACEMENT_DEADLINE)
    assert failed["status"]["failedIndexes"] == "0" and failed["status"]["failed"] == 2
    pods = sorted(
        pods_of((await api.list(PODS, namespace))["items"], "retried"), key=lambda p: p["metadata"]["creationTimestamp"]
    )
    counts = [p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] for p in pods]
    assert counts == ["0", "1"]
    first_end = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert _seconds(pods[1]["metadata"]["creationTimestamp"]) - _seconds(first_end) >= 9


async def test_a_job_with_a_manual_selector_adopts_and_counts_a_matching_orphan(api: ApiClient, namespace: str) -> None:
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "adopt"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 2"]}],
        },
    }
    await api.create(PODS, orphan, namespace)
    body = job("adopter", "sleep 300", manualSelector=True, selector={"matchLabels": {"app": "adopt"}})
    body["spec"]["template"]["metadata"] = {"labels": {"app": "adopt"}}
    created = await api.create(JOBS, body, namespace)
    assert created["spec"]["template"]["metadata"]["labels"] == {"app": "adopt"}  # nothing generated
    done = await wait_job(api, namespace, "adopter", "Complete")
    assert done["status"]["succeeded"] == 1
    [pod] = (await api.list(PODS, namespace))["items"]  # the adopted pod was the one completion it wanted
    assert pod["metadata"]["name"] == "stray"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert not pod["metadata"].get("finalizers")  # adopted with the tracking finalizer, released once counted


async def test_a_success_policy_completes_an_indexed_job_before_all_its_indexes(api: ApiClient, namespace: str) -> None:
    spec = {"completionMode": "Indexed", "completions": 3, "parallelism": 1}
    await api.create(JOBS, job("leader", successPolicy={"rules": [{"succeededCount": 1}]}, **spec), namespace)
    done = await wait_job(api, namespace, "leader", "Complete")
    met, complete = true_condition(done, "SuccessCriteriaMet"), true_condition(done, "Complete")
    assert met is not None and complete is not None
    for condition in (met, complete):
        assert (condition["reason"], condition["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    assert (done["status"]["succeeded"], done["status"]["completedIndexes"]) == (1, "0")


async def test_a_suspended_job_runs_nothing_until_resumed(api: ApiClient, namespace: str) -> None:
    await api.create(JOBS, job("later", suspend=True), namespace)
    suspended = await wait_job(api, namespace, "later", "Suspended")
    condition = true_condition(suspended, "Suspended")
    assert condition is not None and (condition["reason"], condition["message"]) == ("JobSuspended", "Job suspended")
    assert "startTime" not in suspended["status"]
    assert not pods_of((await api.list(PODS, namespace))["items"], "later")
    await api.patch(JOBS, "later", {"spec": {"suspend": False}}, namespace)
    done = await wait_job(api, namespace, "later", "Complete")
    resumed = next(c for c in done["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    events = await events_for(api, namespace, "later")
    assert ("Normal", "Suspended", "Job suspended") in events and ("Normal", "Resumed", "Job resumed") in events


async def test_suspending_a_running_job_deletes_its_pods(api: ApiClient, namespace: str) -> None:
    await api.create(JOBS, job("paused", "sleep 300", parallelism=2, completions=4), namespace)
    await watch_until(api, PODS, namespace, lambda pods: len(pods_of(pods, "paused")) == 2, what="2 pods")
    await api.patch(JOBS, "paused", {"spec": {"suspend": True}}, namespace)
    await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "paused"), what="no pods")
    suspended = await wait_job(api, namespace, "paused", "Suspended")
    assert suspended["status"].get("active", 0) == 0 and "failed" not in suspended["status"]


async def test_a_finished_job_with_a_ttl_is_deleted_with_its_pods(api: ApiClient, namespace: str) -> None:
    await api.create(JOBS, job("brief", ttlSecondsAfterFinished=0), namespace)
    await watch_until(api, PODS, namespace, lambda pods: pods_of(pods, "brief"), what="its pod")
    await watch_until(api, JOBS, namespace, lambda jobs: not jobs, what="the job gone")
    await watch_until(api, PODS, namespace, lambda pods: not pods_of(pods, "brief"), what="its pods gone")


async def test_a_job_synced_again_and_again_holds_one_timed_wake_up_the_earliest(api: ApiClient) -> None:
    controller = JobController(api)  # not started: only its timers are looked at
    try:
        loop = asyncio.get_running_loop()
        for delay in (100.0, 50.0, 200.0, 75.0):
            controller.wake_after("ns/job", delay)
        [pending] = controller._wake_ups.values()
        assert pending.when() - loop.time() == pytest.approx(50.0, abs=1.0)
    finally:
        await controller.stop()
    assert controller._wake_ups == {}


@pytest.mark.slow
async def test_a_kill_9_mid_job_then_restart_counts_every_finished_pod_exactly_once(tmp_path: Path) -> None:
    restartable = start_cluster(tmp_path, nodes=("--runtime", "fake", "--nodes", "2"))
    try:
        async with ApiClient(load_kubeconfig(restartable.kubeconfig)) as client:
            await client.create(JOBS, job("steady", "sleep 1", completions=8, parallelism=2), "default")
            await watch_until(
                client,
                JOBS,
                "default",
                lambda jobs: (jobs[0].get("status") or {}).get("succeeded", 0) >= 3,
                what="3 completions counted",
            )
        restartable.process.kill()  # SIGKILL: pods may be finished but not yet counted, or counted but tracked
        restartable.process.wait()
        restartable = start_cluster(tmp_path, restartable.port, nodes=("--runtime", "fake", "--nodes", "2"))
        async with ApiClient(load_kubeconfig(restartable.kubeconfig)) as client:
            done = await wait_job(client, "default", "steady", "Complete", REPLACEMENT_DEADLINE)
            pods = pods_of((await client.list(PODS, "default"))["items"], "steady")
    finally:
        restartable.stop()
    phases = [p["status"]["phase"] for p in pods]
    assert done["status"]["succeeded"] == phases.count("Succeeded") == 8
    assert done["status"].get("failed", 0) == phases.count("Failed")  # pods the restart cut short, if any
    assert all(TRACKING not in (p["metadata"].get("finalizers") or ()) for p in pods)


# -- printing and the index arithmetic ------------------------------------------------------------------------------


def test_job_rows_print_status_completions_and_duration_as_kubectl_1_33_shows_them() -> None:
    now = epoch_us(datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC))
    base = {"metadata": {"name": "j", "creationTimestamp": "2026-01-01T11:00:00Z"}, "spec": {"parallelism": 3}}

    def row(status: Obj, **meta: str) -> list[Any]:
        return job_cells({**base, "metadata": {**base["metadata"], **meta}, "status": status}, now)[:4]

    assert row({}) == ["j", "Running", "0/1 of 3", ""]
    running = {"startTime": "2026-01-01T11:58:00Z", "succeeded": 1}
    assert row(running) == ["j", "Running", "1/1 of 3", "2m"]
    failing = {**running, "conditions": [{"type": "FailureTarget", "status": "True"}]}
    assert row(failing)[1] == "FailureTarget"
    assert row(failing, deletionTimestamp="2026-01-01T12:00:00Z")[1] == "Terminating"
    suspended = {"conditions": [{"type": "Suspended", "status": "True"}]}
    assert row(suspended)[1] == "Suspended"
    assert row({"conditions": [{"type": "Suspended", "status": "False"}]})[1] == "Running"
    complete = {
        "startTime": "2026-01-01T11:00:00Z",
        "completionTime": "2026-01-01T11:00:42Z",
        "succeeded": 3,
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}],
    }
    assert job_cells({**base, "spec": {"completions": 3}, "status": complete}, now)[:4] == [
        "j",
        "Complete",
        "3/3",
        "42s",
    ]


def test_completed_indexes_print_and_parse_as_kube_writes_them() -> None:
    intervals = Intervals().with_indexes([0, 1, 2, 4, 5, 7])
    assert str(intervals) == "0-2,4,5,7"
    assert str(Intervals.parse("0-2,4,5,7,x,9-20", 10)) == "0-2,4,5,7,9"
    assert intervals.total() == 6 and intervals.has(5) and not intervals.has(6)
    assert first_pending_indexes(3, 9, intervals) == [3, 6, 8]


def test_a_pod_condition_rule_matches_with_kubes_message() -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }
    failed_pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]},
    }
    match = match_pod_failure_policy(job("j", podFailurePolicy=policy), failed_pod)
    assert match == PolicyMatch(
        "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 1", True, "FailJob"
    )
    ignored = {**failed_pod, "status": {"containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 1}}}]}}
    assert match_pod_failure_policy(job("j", podFailurePolicy=policy), ignored) == PolicyMatch(None, False, "Ignore")


def test_success_policy_rules_match_by_index_overlap_or_count() -> None:
    def policy(*rules: Obj) -> Obj:
        return job("j", completionMode="Indexed", completions=8, successPolicy={"rules": list(rules)})

    succeeded = Intervals().with_indexes([1, 2, 3, 5])
    assert match_success_policy(policy({"succeededIndexes": "0-2,5"}), succeeded) is None  # 0 is missing
    enough = policy({"succeededIndexes": "0-2,5", "succeededCount": 3})
    assert match_success_policy(enough, succeeded) == "Matched rules at index 0"
    second = policy({"succeededIndexes": "7"}, {"succeededIndexes": "1-3"})
    assert match_success_policy(second, succeeded) == "Matched rules at index 1"
    assert match_success_policy(policy({"succeededCount": 5}), succeeded) is None


def test_indexed_pod_names_fit_the_generated_name_limit() -> None:
    assert pod_name_prefix("web", 3) == "web-3-"
    long = pod_name_prefix("a" * 70, 12)
    assert len(long) == 58 and long.endswith("-12-")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
