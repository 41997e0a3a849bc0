"""The ReplicaSet controller in a real `kube-shim up`: replicas are kept, healed, scaled, adopted and released.

The cluster has simulated nodes (tests/workloads.py): the real scheduler binds the pods and the node agents run
them on the fake runtime, so they turn Ready at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shim.client import ApiClient, ApiException, SharedInformer, load_kubeconfig
from shim.controllers.podutil import pods_to_delete
from shim.machinery.resources import EVENTS, PODS, REPLICASETS
from tests.cluster import Cluster
from tests.workloads import cluster_with_fake_nodes, watch_until

Obj = dict[str, Any]


cluster = cluster_with_fake_nodes()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def replica_set(name: str, replicas: int, **spec: Any) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            **spec,
        },
    }


def active_pods(pods: list[Obj], app: str) -> list[Obj]:
    return [
        p
        for p in pods
        if (p["metadata"].get("labels") or {}).get("app") == app and not p["metadata"].get("deletionTimestamp")
    ]


def controlled(obj: Obj) -> bool:
    return any(ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or ())


def ready_status(rs: Obj, replicas: int) -> bool:
    status = rs.get("status") or {}
    return (
        status.get("observedGeneration") == rs["metadata"]["generation"]
        and status.get("replicas") == replicas
        and status.get("readyReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
    )


async def wait_ready(api: ApiClient, namespace: str, name: str, replicas: int) -> Obj:
    return await watch_until(
        api,
        REPLICASETS,
        namespace,
        lambda rss: next((rs for rs in rss if rs["metadata"]["name"] == name and ready_status(rs, replicas)), None),
        what=f"replica set {name} with {replicas} ready replicas",
    )


async def test_a_replica_set_creates_its_pods_owned_by_it(api: ApiClient, namespace: str):
    rs = await api.create(REPLICASETS, replica_set("web", 3), namespace)
    status = (await wait_ready(api, namespace, "web", 3))["status"]
    assert status["fullyLabeledReplicas"] == 3
    pods = active_pods((await api.list(PODS, namespace))["items"], "web")
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["generateName"] == "web-"
        assert pod["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    created = await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: (
            messages
            if len(messages := {e["message"] for e in events if e["reason"] == "SuccessfulCreate"}) == 3
            else None
        ),
        what="three SuccessfulCreate events",
    )
    assert created == {f"Created pod: {p['metadata']['name']}" for p in pods}


async def test_a_deleted_pod_is_replaced(api: ApiClient, namespace: str):
    await api.create(REPLICASETS, replica_set("heal", 2), namespace)
    await wait_ready(api, namespace, "heal", 2)
    victim = active_pods((await api.list(PODS, namespace))["items"], "heal")[0]["metadata"]["name"]
    await api.delete(PODS, victim, namespace)
    survivors = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: (
            names
            if len(names := {p["metadata"]["name"] for p in active_pods(pods, "heal")}) == 2 and victim not in names
            else None
        ),
        what="a replacement for the deleted pod",
    )
    assert victim not in survivors
    await wait_ready(api, namespace, "heal", 2)


async def test_scale_up_and_down_through_the_scale_subresource(api: ApiClient, namespace: str, cluster: Cluster):
    await api.create(REPLICASETS, replica_set("scaled", 1), namespace)
    await wait_ready(api, namespace, "scaled", 1)
    cluster.kubectl("scale", "-n", namespace, "replicaset/scaled", "--replicas=4")
    await wait_ready(api, namespace, "scaled", 4)
    cluster.kubectl("scale", "-n", namespace, "replicaset/scaled", "--replicas=2")
    await wait_ready(api, namespace, "scaled", 2)
    deleted = await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: [e for e in events if e["reason"] == "SuccessfulDelete"] or None,
        what="SuccessfulDelete events",
    )
    assert all(e["message"].startswith("Deleted pod: scaled-") for e in deleted)


async def test_orphans_are_adopted_and_relabelled_pods_released(api: ApiClient, namespace: str):
    orphan = {
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    await api.create(PODS, orphan, namespace)
    rs = await api.create(REPLICASETS, replica_set("adopt", 2), namespace)
    await wait_ready(api, namespace, "adopt", 2)
    pods = active_pods((await api.list(PODS, namespace))["items"], "adopt")
    assert len(pods) == 2, "the orphan counts as one of the two replicas"
    adopted = next(p for p in pods if p["metadata"]["name"] == "orphan")
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]

    await api.patch(PODS, "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, namespace)
    released = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: next((p for p in pods if p["metadata"]["name"] == "orphan" and not controlled(p)), None),
        what="the relabelled pod to be released",
    )
    assert released["metadata"]["labels"] == {"app": "elsewhere"}
    replacement = await watch_until(
        api,
        PODS,
        namespace,
        lambda pods: owned if len(owned := active_pods(pods, "adopt")) == 2 else None,
        what="a replacement for the released pod",
    )
    assert all(controlled(p) and p["metadata"]["name"] != "orphan" for p in replacement)


async def patch_until_applied(api: ApiClient, name: str, patch: Obj, namespace: str) -> None:
    """A merge patch, repeated while the server answers Conflict (the controller writes the same object)."""
    for _ in range(10):
        try:
            await api.patch(REPLICASETS, name, patch, namespace)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise AssertionError(f"patch of {name} kept conflicting")


async def test_a_burst_of_events_never_creates_a_pod_twice(api: ApiClient, namespace: str):
    """While the controller creates 60 pods, 20 updates of the replica set ask it to sync again and again."""
    created: set[str] = set()

    async def record(event: str, pod: Obj, old: Obj | None) -> None:
        created.add(pod["metadata"]["name"])

    recorder = SharedInformer(api, PODS, namespace=namespace)
    recorder.add_event_handler(record)
    recorder.start()
    try:
        await recorder.synced.wait()
        await api.create(REPLICASETS, replica_set("burst", 60), namespace)
        for i in range(20):
            await patch_until_applied(api, "burst", {"metadata": {"annotations": {"poke": str(i)}}}, namespace)
        # a spec change the controller must observe once all 60 exist: every sync asked for above has run by then
        await watch_until(api, REPLICASETS, namespace, lambda rss: rss[0]["status"].get("replicas") == 60)
        await patch_until_applied(api, "burst", {"spec": {"minReadySeconds": 1}}, namespace)
        await watch_until(api, REPLICASETS, namespace, lambda rss: rss[0]["status"].get("observedGeneration") == 2)
        pods = (await api.list(PODS, namespace))["items"]
    finally:
        await recorder.stop()
    assert len(pods) == 60
    assert {p["metadata"]["name"] for p in pods} == created


async def test_available_replicas_wait_for_min_ready_seconds(api: ApiClient, namespace: str):
    await api.create(REPLICASETS, replica_set("patient", 2, minReadySeconds=3), namespace)
    states: list[tuple[int, int]] = []

    def track(rss: list[Obj]) -> bool:
        status = rss[0].get("status") or {} if rss else {}
        states.append((status.get("readyReplicas", 0), status.get("availableReplicas", 0)))
        return status.get("availableReplicas", 0) == 2

    await watch_until(api, REPLICASETS, namespace, track, what="both replicas to become available")
    assert (2, 0) in states, "ready replicas are not available before minReadySeconds"


async def test_pod_creation_failures_are_reported(api: ApiClient, namespace: str):
    bad = replica_set("refused", 2)
    bad["spec"]["template"]["spec"]["priorityClassName"] = "no-such-class"
    await api.create(REPLICASETS, bad, namespace)
    condition = await watch_until(
        api,
        REPLICASETS,
        namespace,
        lambda rss: next(iter((rss[0].get("status") or {}).get("conditions") or ()), None) if rss else None,
        what="a ReplicaFailure condition",
    )
    assert condition["type"] == "ReplicaFailure"
    assert condition["reason"] == "FailedCreate"
    assert "no PriorityClass with name no-such-class was found" in condition["message"]
    event = await watch_until(
        api,
        EVENTS,
        namespace,
        lambda events: next((e for e in events if e["reason"] == "FailedCreate"), None),
        what="a FailedCreate event",
    )
    assert event["type"] == "Warning"
    assert event["message"].startswith("Error creating: ")


def _pod(name: str, node: str = "n1", phase: str = "Running", ready: bool = True, ready_ago: float = 100) -> Obj:
    stamp = (datetime.now(UTC) - timedelta(seconds=ready_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "uid": name, "creationTimestamp": stamp},
        "spec": {"nodeName": node},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp}],
        },
    }


def test_scale_down_deletes_unscheduled_then_pending_then_not_ready_then_newest_pods_first():
    pods = [
        _pod("old-ready", ready_ago=10_000),
        _pod("young-ready", ready_ago=5),
        _pod("not-ready", ready=False),
        _pod("pending", phase="Pending", ready=False),
        _pod("unscheduled", node="", phase="Pending", ready=False),
    ]
    chosen = pods_to_delete(pods, pods, 4, datetime.now(UTC))
    assert [p["metadata"]["name"] for p in chosen] == ["unscheduled", "pending", "not-ready", "young-ready"]


def test_scale_down_prefers_pods_crowded_onto_one_node():
    pods = [_pod("alone", node="n1"), _pod("crowded-a", node="n2"), _pod("crowded-b", node="n2")]
    related = [*pods, _pod("sibling", node="n2")]
    chosen = pods_to_delete(pods, related, 1, datetime.now(UTC))
    assert chosen[0]["metadata"]["name"].startswith("crowded-")
