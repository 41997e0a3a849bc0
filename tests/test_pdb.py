"""policy/v1 PodDisruptionBudgets in a real `kube-shim up`: the disruption controller's status, and the eviction
subresource honouring it with kube's answers; `kubectl drain` behind a budget.

The cluster has simulated nodes (tests/workloads.py): the real scheduler binds the pods and the node agents run
them on the fake runtime, where they turn Ready at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shim.apiserver.errors import ApiError
from shim.apiserver.kinds.eviction import spend_disruption
from shim.client import ApiClient, Resource, SharedInformer, load_kubeconfig
from shim.machinery.resources import DEPLOYMENTS, EVENTS, POD_DISRUPTION_BUDGETS, PODS, STATEFULSETS
from tests.cluster import Cluster
from tests.rawapi import RawApi, pods
from tests.workloads import IMAGE, cluster_with_fake_nodes, deployment, never_ready, watch_until

Obj = dict[str, Any]

cluster = cluster_with_fake_nodes()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as api_client:
        yield api_client


def budget(name: str, app: str, **spec: Any) -> Obj:
    """PodDisruptionBudget `name` over the pods labelled app=APP; `spec` sets minAvailable or maxUnavailable."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": app}}, **spec},
    }


def eviction(name: str, namespace: str) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}


async def settled(client: ApiClient, namespace: str, name: str, **wanted: Any) -> Obj:
    """The budget once the controller has seen its generation and its status has the `wanted` numbers."""

    def match(budgets: list[Obj]) -> Obj | None:
        for pdb in budgets:
            status = pdb.get("status") or {}
            if (
                pdb["metadata"]["name"] == name
                and status.get("observedGeneration") == pdb["metadata"]["generation"]
                and all(status.get(key) == value for key, value in wanted.items())
            ):
                return pdb
        return None

    return await watch_until(client, POD_DISRUPTION_BUDGETS, namespace, match, what=f"budget {name} {wanted}")


async def ready_pods(client: ApiClient, namespace: str, app: str, count: int) -> list[Obj]:
    """The app's pods once exactly `count` of them are Ready and none is going."""

    def match(found: list[Obj]) -> list[Obj] | None:
        mine = [p for p in found if (p["metadata"].get("labels") or {}).get("app") == app]
        ready = [p for p in mine if not p["metadata"].get("deletionTimestamp") and _ready(p)]
        return ready if len(ready) == count == len(mine) else None

    return await watch_until(client, PODS, namespace, match, what=f"{count} ready pods of {app}")


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class Recording:
    """Every version of the objects an informer delivered, in order, and a wait for one of them."""

    def __init__(self) -> None:
        self.versions: list[Obj] = []
        self.changed = asyncio.Condition()

    async def record(self, _event: str, obj: Obj, _old: Obj | None) -> None:
        async with self.changed:
            self.versions.append(copy.deepcopy(obj))
            self.changed.notify_all()

    async def until(self, predicate: Callable[[Obj], bool], timeout: float = 30.0) -> Obj:
        """The first version recorded (so far or from now) for which `predicate` holds."""

        def found() -> Obj | None:
            return next((v for v in self.versions if predicate(v)), None)

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(found), timeout)
        result = found()
        assert result is not None
        return result


@contextlib.asynccontextmanager
async def recording(client: ApiClient, resource: Resource, namespace: str) -> AsyncIterator[Recording]:
    """Record the namespace's `resource` from its first list until the block ends."""
    recorder = Recording()
    informer = SharedInformer(client, resource, namespace=namespace)
    informer.add_event_handler(recorder.record)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        yield recorder
    finally:
        await informer.stop()


def condition(pdb: Obj) -> tuple[str, str]:
    found = next(c for c in pdb["status"]["conditions"] if c["type"] == "DisruptionAllowed")
    return found["status"], found["reason"]


# -- the disruption controller ----------------------------------------------------------------------------------


async def test_max_unavailable_counts_against_the_deployments_replicas(client: ApiClient, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 3), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("web", "web", maxUnavailable=1), namespace)
    pdb = await settled(client, namespace, "web", expectedPods=3, desiredHealthy=2, currentHealthy=3)
    assert pdb["status"]["disruptionsAllowed"] == 1
    assert condition(pdb) == ("True", "SufficientPods")


async def test_percentages_round_up_and_a_number_counts_the_selected_pods(client: ApiClient, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("api", 3), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("half", "api", minAvailable="50%"), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("all", "api", minAvailable=3), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("third", "api", maxUnavailable="34%"), namespace)
    half = await settled(client, namespace, "half", expectedPods=3, desiredHealthy=2, currentHealthy=3)
    assert half["status"]["disruptionsAllowed"] == 1
    full = await settled(client, namespace, "all", expectedPods=3, desiredHealthy=3, currentHealthy=3)
    assert full["status"]["disruptionsAllowed"] == 0
    assert condition(full) == ("False", "InsufficientPods")
    # 34% of 3 is 1.02, rounded up to 2 unavailable: 1 must stay healthy
    third = await settled(client, namespace, "third", expectedPods=3, desiredHealthy=1)
    assert third["status"]["disruptionsAllowed"] == 2


async def test_a_percentage_counts_against_a_stateful_sets_scale(client: ApiClient, namespace: str) -> None:
    stateful = {**deployment("db", 2), "kind": "StatefulSet"}
    stateful["spec"]["serviceName"] = "db"
    await client.create(STATEFULSETS, stateful, namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("db", "db", maxUnavailable="50%"), namespace)
    pdb = await settled(client, namespace, "db", expectedPods=2, desiredHealthy=1, currentHealthy=2)
    assert pdb["status"]["disruptionsAllowed"] == 1


async def test_a_percentage_over_pods_without_a_controller_allows_nothing(
    api: RawApi, client: ApiClient, namespace: str
) -> None:
    bare = {
        "metadata": {"name": "bare", "labels": {"app": "bare"}},
        "spec": deployment("bare", 1)["spec"]["template"]["spec"],
    }
    await client.create(PODS, bare, namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("bare", "bare", maxUnavailable="50%"), namespace)
    await ready_pods(client, namespace, "bare", 1)
    pdb = await settled(client, namespace, "bare", expectedPods=0, currentHealthy=1)
    assert pdb["status"]["disruptionsAllowed"] == 0
    reply = await api.call("POST", f"{pods(namespace)}/bare/eviction", eviction("bare", namespace))
    assert reply.status == 429
    warning = await watch_until(
        client,
        EVENTS,
        namespace,
        lambda events: next((e["message"] for e in events if e["reason"] == "UnmanagedPods"), None),
        what="the UnmanagedPods event",
    )
    assert warning == (
        "Pods selected by this PodDisruptionBudget (selector: &LabelSelector{MatchLabels:map[string]string{app: bare,},"
        "MatchExpressions:[]LabelSelectorRequirement{},}) were found to be unmanaged. As a result, the status of the "
        "PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please "
        'set ".spec.minAvailable" field of the PDB to an integer value.'
    )


async def test_kubectl_lists_budgets_with_kubes_columns(cluster: Cluster, client: ApiClient, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("cols", 2), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("cols", "cols", maxUnavailable=1), namespace)
    await settled(client, namespace, "cols", currentHealthy=2, disruptionsAllowed=1)
    table = cluster.kubectl("get", "pdb", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert table[1].split()[:4] == ["cols", "N/A", "1", "1"]


async def test_both_min_available_and_max_unavailable_is_invalid(api: RawApi, namespace: str) -> None:
    path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    reply = await api.call("POST", path, budget("both", "x", minAvailable=1, maxUnavailable="120%"))
    assert reply.status == 422
    message = reply.json()["message"]
    assert message.startswith('PodDisruptionBudget.policy "both" is invalid: [spec: Invalid value: ')
    assert "minAvailable and maxUnavailable cannot be both set" in message
    assert "MinAvailable:(*intstr.IntOrString)(0xc000000000)" in message
    assert (
        'spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"120%"}: '
        "must not be greater than 100%" in message
    )


async def test_a_budget_without_a_spec_is_stored_with_an_empty_one(
    api: RawApi, client: ApiClient, namespace: str
) -> None:
    path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    created = await api.ok(
        "POST", path, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "bare"}}
    )
    assert created["spec"] == {}
    pdb = await settled(client, namespace, "bare", expectedPods=0, desiredHealthy=0)
    assert condition(pdb) == ("False", "InsufficientPods")


@pytest.mark.parametrize(
    "spec",
    [
        {"minAvailable": True},
        {"minAvailable": 1.5},
        {"maxUnavailable": {"a": 1}},
        {"maxUnavailable": [1]},
        {"maxUnavailable": "x%"},
        {"minAvailable": -1},
        {"selector": "app=x"},
        {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
        {"unhealthyPodEvictionPolicy": 5},
        {"unhealthyPodEvictionPolicy": "Sometimes"},
    ],
)
async def test_a_malformed_budget_is_refused_with_a_4xx(api: RawApi, namespace: str, spec: Obj) -> None:
    path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    reply = await api.call("POST", path, {**budget("bad", "x"), "spec": spec})
    assert 400 <= reply.status < 500, reply.body
    assert reply.json()["kind"] == "Status"


# -- the eviction subresource ----------------------------------------------------------------------------------


async def test_an_eviction_the_budget_forbids_gets_kubes_429(api: RawApi, client: ApiClient, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("db", 2), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("db", "db", minAvailable=2), namespace)
    await settled(client, namespace, "db", currentHealthy=2, desiredHealthy=2, disruptionsAllowed=0)
    pod = (await ready_pods(client, namespace, "db", 2))[0]["metadata"]["name"]
    reply = await api.call("POST", f"{pods(namespace)}/{pod}/eviction", eviction(pod, namespace))
    assert reply.status == 429
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Cannot evict pod as it would violate the pod\'s disruption budget.",'
        b'"reason":"TooManyRequests","details":{"causes":[{"reason":"DisruptionBudget",'
        b'"message":"The disruption budget db needs 2 healthy pods and has 2 currently"}]},"code":429}'
    )
    assert "Retry-After" not in reply.headers
    assert (await client.get(PODS, pod, namespace))["metadata"].get("deletionTimestamp") is None


async def test_an_eviction_spends_the_budget_and_records_the_pod(
    api: RawApi, client: ApiClient, namespace: str
) -> None:
    await client.create(DEPLOYMENTS, deployment("cache", 2), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("cache", "cache", maxUnavailable=1), namespace)
    await settled(client, namespace, "cache", currentHealthy=2, disruptionsAllowed=1)
    pod = (await ready_pods(client, namespace, "cache", 2))[0]["metadata"]["name"]
    async with (
        recording(client, POD_DISRUPTION_BUDGETS, namespace) as budgets,
        recording(client, PODS, namespace) as pod_versions,
    ):
        evicted = await api.call("POST", f"{pods(namespace)}/{pod}/eviction", eviction(pod, namespace))
        assert evicted.status == 201, evicted.body
        spent = await budgets.until(lambda pdb: pod in ((pdb.get("status") or {}).get("disruptedPods") or {}))
        marked = await pod_versions.until(
            lambda seen: (
                seen["metadata"]["name"] == pod
                and any(c["type"] == "DisruptionTarget" for c in seen["status"].get("conditions") or ())
            )
        )
    spent = spent["status"]
    target = next(c for c in marked["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (target["status"], target["reason"], target["message"]) == (
        "True",
        "EvictionByEvictionAPI",
        "Eviction API: evicting",
    )
    assert spent["disruptionsAllowed"] == 0
    assert condition({"status": spent}) == ("False", "InsufficientPods")
    # the replacement turns Ready and the controller gives the disruption back
    await settled(client, namespace, "cache", currentHealthy=2, disruptionsAllowed=1)


@pytest.mark.parametrize(("policy", "code"), [(None, 429), ("IfHealthyBudget", 429), ("AlwaysAllow", 201)])
async def test_an_unready_pod_goes_only_when_the_policy_allows(
    api: RawApi, client: ApiClient, namespace: str, policy: str | None, code: int
) -> None:
    sick = deployment("sick", 2)
    sick["spec"]["template"] = never_ready(sick["spec"]["template"])
    await client.create(DEPLOYMENTS, sick, namespace)
    spec: dict[str, Any] = {"minAvailable": 1}
    if policy is not None:
        spec["unhealthyPodEvictionPolicy"] = policy
    await client.create(POD_DISRUPTION_BUDGETS, budget("sick", "sick", **spec), namespace)
    running = await watch_until(
        client,
        PODS,
        namespace,
        lambda found: [p for p in found if (p.get("status") or {}).get("phase") == "Running"][:1],
        what="a running pod",
    )
    await settled(client, namespace, "sick", expectedPods=2, desiredHealthy=1, currentHealthy=0)
    pod = running[0]["metadata"]["name"]
    reply = await api.call("POST", f"{pods(namespace)}/{pod}/eviction", eviction(pod, namespace))
    assert reply.status == code, reply.body


async def test_a_pod_two_budgets_select_gets_kubes_500(api: RawApi, client: ApiClient, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("twice", 1), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("one", "twice", maxUnavailable=1), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("two", "twice", maxUnavailable=1), namespace)
    pod = (await ready_pods(client, namespace, "twice", 1))[0]["metadata"]["name"]
    reply = await api.call("POST", f"{pods(namespace)}/{pod}/eviction", eviction(pod, namespace))
    assert reply.status == 500
    assert reply.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"This pod has more than '
        b'one PodDisruptionBudget, which the eviction subresource does not support.","code":500}'
    )


async def test_a_finished_pod_is_evicted_whatever_the_budget(api: RawApi, client: ApiClient, namespace: str) -> None:
    done = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "done", "labels": {"app": "done"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE, "command": ["true"]}]},
    }
    await client.create(PODS, done, namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("done", "done", minAvailable=5), namespace)
    await watch_until(
        client,
        PODS,
        namespace,
        lambda found: any((p.get("status") or {}).get("phase") == "Succeeded" for p in found),
        what="the pod Succeeded",
    )
    await settled(client, namespace, "done", disruptionsAllowed=0)
    reply = await api.call("POST", f"{pods(namespace)}/done/eviction", eviction("done", namespace))
    assert reply.status == 201, reply.body


# -- kubectl drain ---------------------------------------------------------------------------------------------


async def test_kubectl_drain_evicts_one_pod_at_a_time_behind_the_budget(
    cluster: Cluster, client: ApiClient, namespace: str
) -> None:
    nodes = cluster.kubectl("get", "nodes", "-o", "name").stdout.split()
    drained, spare = nodes[0].removeprefix("node/"), nodes[1].removeprefix("node/")
    label = f"pdb-test-{namespace}"
    cluster.kubectl("label", "node", drained, f"{label}=yes")
    spec = deployment("drained", 2)
    spec["spec"]["template"]["spec"]["nodeSelector"] = {label: "yes"}
    await client.create(DEPLOYMENTS, spec, namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("drained", "drained", maxUnavailable=1), namespace)
    before = {p["metadata"]["name"] for p in await ready_pods(client, namespace, "drained", 2)}
    await settled(client, namespace, "drained", currentHealthy=2, disruptionsAllowed=1)
    cluster.kubectl("label", "node", spare, f"{label}=yes")  # where the replacements go
    try:
        result = await asyncio.to_thread(
            cluster.kubectl,
            "drain", drained, "--pod-selector", "app=drained", "--ignore-daemonsets", "--timeout=90s",
            timeout=120,
        )  # fmt: skip
    finally:
        cluster.kubectl("uncordon", drained)
    assert f"node/{drained} drained" in result.stdout
    for name in before:
        assert f"pod/{name} evicted" in result.stdout
    # the second eviction waited for the first pod's replacement: kubectl retried the budget's 429
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    after = await ready_pods(client, namespace, "drained", 2)
    assert {p["spec"]["nodeName"] for p in after} == {spare}


# -- kube's refusals that the controller's timing decides ------------------------------------------------------


def test_a_budget_the_controller_has_not_seen_asks_to_retry_in_10_seconds() -> None:
    pdb = {"metadata": {"name": "new", "generation": 2}, "status": {"observedGeneration": 1, "disruptionsAllowed": 1}}
    with pytest.raises(ApiError) as refused:
        spend_disruption(pdb, "web-1")
    assert refused.value.body() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget new is still being processed by the server.",
                }
            ],
            "retryAfterSeconds": 10,
        },
        "code": 429,
    }
    assert refused.value.response().headers["Retry-After"] == "10"


def test_a_negative_allowance_is_forbidden() -> None:
    pdb = {"metadata": {"name": "odd", "generation": 1}, "status": {"observedGeneration": 1, "disruptionsAllowed": -1}}
    with pytest.raises(ApiError) as refused:
        spend_disruption(pdb, "web-1")
    assert refused.value.code == 403
    assert refused.value.message == 'poddisruptionbudget.policy "odd" is forbidden: pdb disruptions allowed is negative'


async def test_a_dry_run_eviction_spends_nothing(api: RawApi, client: ApiClient, namespace: str) -> None:
    await client.create(DEPLOYMENTS, deployment("dry", 2), namespace)
    await client.create(POD_DISRUPTION_BUDGETS, budget("dry", "dry", maxUnavailable=1), namespace)
    before = await settled(client, namespace, "dry", currentHealthy=2, disruptionsAllowed=1)
    pod = (await ready_pods(client, namespace, "dry", 2))[0]["metadata"]["name"]
    body = {**eviction(pod, namespace), "deleteOptions": {"dryRun": ["All"]}}
    reply = await api.call("POST", f"{pods(namespace)}/{pod}/eviction", body)
    assert reply.status == 201, reply.body
    after = await client.get(POD_DISRUPTION_BUDGETS, "dry", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert (await client.get(PODS, pod, namespace))["metadata"].get("deletionTimestamp") is None
