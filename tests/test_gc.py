"""The garbage collector against a real `kube-shim up`: background, foreground and orphan propagation.

Owners and dependents are made by hand (config maps owning config maps, a replica set owning pods), so no
other controller is involved; the collector runs in the test process.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, Resource, load_kubeconfig
from shim.controllers.garbagecollector import GarbageCollector
from shim.machinery.resources import CONFIGMAPS, PODS, REPLICASETS
from tests.cluster import Cluster
from tests.controllerkit import running
from tests.workloads import watch_until

Obj = dict[str, Any]
HOLD = "example.com/hold"  # a finalizer of ours: keeps a dependent Terminating until the test lets it go


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client, running(GarbageCollector(client)):
        yield client


def owned_by(*owners: Obj, block: bool = False) -> list[Obj]:
    return [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            **({"blockOwnerDeletion": True} if block else {}),
        }
        for owner in owners
    ]


async def config_map(api: ApiClient, namespace: str, name: str, owners: list[Obj] | None = None, **meta: Any) -> Obj:
    body = {"metadata": {"name": name, "ownerReferences": owners or [], **meta}, "data": {"k": "v"}}
    return await api.create(CONFIGMAPS, body, namespace)


async def until_gone(api: ApiClient, resource: Resource, namespace: str, *names: str) -> None:
    await watch_until(
        api,
        resource,
        namespace,
        lambda objs: not {o["metadata"]["name"] for o in objs} & set(names),
        what=f"{', '.join(names)} to be deleted",
    )


async def test_dependents_of_a_deleted_owner_are_deleted_in_the_background(api: ApiClient, namespace: str):
    owner = await config_map(api, namespace, "owner")
    await config_map(api, namespace, "child-a", owned_by(owner))
    await config_map(api, namespace, "child-b", owned_by(owner, block=True))
    await config_map(api, namespace, "bystander")
    await api.delete(CONFIGMAPS, "owner", namespace)
    await until_gone(api, CONFIGMAPS, namespace, "child-a", "child-b")
    names = {c["metadata"]["name"] for c in (await api.list(CONFIGMAPS, namespace))["items"]}
    assert "bystander" in names


async def test_a_dependent_with_a_live_owner_only_loses_the_reference_to_the_deleted_one(
    api: ApiClient, namespace: str
):
    first = await config_map(api, namespace, "first")
    second = await config_map(api, namespace, "second")
    await config_map(api, namespace, "shared", owned_by(first, second))
    await api.delete(CONFIGMAPS, "first", namespace)
    shared = await watch_until(
        api,
        CONFIGMAPS,
        namespace,
        lambda cms: next((c for c in cms if c["metadata"]["name"] == "shared" and len(_refs(c)) == 1), None),
        what="shared to drop its reference to first",
    )
    assert _refs(shared) == owned_by(second)


async def test_a_dependent_whose_owner_never_existed_is_deleted(api: ApiClient, namespace: str):
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
    await config_map(api, namespace, "haunted", owned_by(ghost))
    await until_gone(api, CONFIGMAPS, namespace, "haunted")


async def test_foreground_deletion_waits_for_blocking_dependents(api: ApiClient, namespace: str):
    owner = await config_map(api, namespace, "owner")
    await config_map(api, namespace, "blocking", owned_by(owner, block=True), finalizers=[HOLD])
    await config_map(api, namespace, "free", owned_by(owner))
    await api.delete(CONFIGMAPS, "owner", namespace, propagationPolicy="Foreground")

    def state(cms: list[Obj]) -> dict[str, Obj] | None:
        by_name = {c["metadata"]["name"]: c for c in cms}
        blocking = by_name.get("blocking")
        if "free" in by_name or blocking is None or not blocking["metadata"].get("deletionTimestamp"):
            return None
        return by_name

    waiting = await watch_until(api, CONFIGMAPS, namespace, state, what="the dependents to be deleted first")
    assert waiting["owner"]["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert waiting["owner"]["metadata"].get("deletionTimestamp")

    await api.patch(CONFIGMAPS, "blocking", {"metadata": {"finalizers": None}}, namespace)
    await until_gone(api, CONFIGMAPS, namespace, "owner", "blocking")


async def test_foreground_deletion_does_not_wait_for_non_blocking_dependents(api: ApiClient, namespace: str):
    owner = await config_map(api, namespace, "owner")
    await config_map(api, namespace, "held", owned_by(owner), finalizers=[HOLD])
    await api.delete(CONFIGMAPS, "owner", namespace, propagationPolicy="Foreground")
    await until_gone(api, CONFIGMAPS, namespace, "owner")
    # it is deleted too, only not waited for
    await watch_until(
        api,
        CONFIGMAPS,
        namespace,
        lambda cms: any(c["metadata"]["name"] == "held" and c["metadata"].get("deletionTimestamp") for c in cms),
        what="held to be deleted",
    )
    await api.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, namespace)


async def test_orphan_deletion_keeps_dependents_without_the_reference(api: ApiClient, namespace: str):
    owner = await config_map(api, namespace, "owner")
    other = await config_map(api, namespace, "other")
    await config_map(api, namespace, "kept", owned_by(owner, other))
    await config_map(api, namespace, "alone", owned_by(owner, block=True))
    await api.delete(CONFIGMAPS, "owner", namespace, propagationPolicy="Orphan")
    await until_gone(api, CONFIGMAPS, namespace, "owner")
    kept = await api.get(CONFIGMAPS, "kept", namespace)
    alone = await api.get(CONFIGMAPS, "alone", namespace)
    assert _refs(kept) == owned_by(other)
    assert _refs(alone) == []
    assert not alone["metadata"].get("deletionTimestamp")


async def test_deleting_a_replica_set_deletes_its_pods_unless_orphaned(api: ApiClient, namespace: str):
    # replicas 0 and pods outside its selector: the replica set controller leaves these pods alone
    rs_body = {
        "metadata": {"name": "rs"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "rs"}},
            "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }
    for name, policy in (("doomed", "Background"), ("spared", "Orphan")):
        rs = await api.create(REPLICASETS, {**rs_body, "metadata": {"name": name}}, namespace)
        for i in range(2):
            pod = {
                "metadata": {"name": f"{name}-{i}", "labels": {"app": "hand-made"}, "ownerReferences": owned_by(rs)},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            }
            await api.create(PODS, pod, namespace)
        await api.delete(REPLICASETS, name, namespace, propagationPolicy=policy)
    await until_gone(api, REPLICASETS, namespace, "doomed", "spared")
    await until_gone(api, PODS, namespace, "doomed-0", "doomed-1")
    spared = {p["metadata"]["name"]: p for p in (await api.list(PODS, namespace))["items"]}
    assert set(spared) == {"spared-0", "spared-1"}
    assert all(_refs(p) == [] for p in spared.values())


def _refs(obj: Obj) -> list[Obj]:
    return obj["metadata"].get("ownerReferences") or []
