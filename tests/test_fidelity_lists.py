"""List freshness, pagination and discovery hashes as kube-apiserver 1.33 answers them (issue 18, item 21).

Where kube's expected text comes from:
- 504 `Too large resource version`: `storage.NewTooLargeResourceVersionError` (apiserver/pkg/storage/errors.go)
  wrapping `errors.NewTimeoutError` ("Timeout: " prefix, retryAfterSeconds), returned by the watch cache's
  `waitUntilFreshAndBlock` after its 3 s blockTimeout (`resourceVersionTooHighRetrySeconds = 1`).
- `specifying resource version is not allowed when using continue`: `storage.ValidateListOptions`
  (apiserver/pkg/storage/util.go), a BadRequest.
- The expired-continue 410: `handleCompactedErrorForPaging` and `inconsistentContinue` in
  apiserver/pkg/storage/etcd3/errors.go; the Status carries `metadata.continue`, a token at revision -1
  ("the latest"); an expired exact list is `expiredList`.
- `remainingItemCount`: etcd3 `store.GetList` sets it (count of keys left) only when the predicate is empty
  (no label or field selector).
- `storageVersionHash`: `discovery.StorageVersionHash` (apiserver/pkg/endpoints/discovery/storageversionhash.go),
  base64 of the first 8 bytes of sha256("<group>/<version>/<kind>") of the storage version; the values below
  are those a real cluster serves (pods `xPOwRZ+Yhw8=`, deployments `8aSe+NMegvE=`, events in both groups
  `r2yiGXH7wu8=`, stored as core/v1 Event). Aggregated discovery (`APIResourceDiscovery`) has no such field.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from kubernetes import client, config

from tests.cluster import Cluster
from tests.rawapi import RawApi, configmaps


def configmap(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": "v"}}


def names(page: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in page["items"]]


async def test_a_list_at_a_future_resource_version_waits_then_is_504_too_large(api: RawApi, namespace: str) -> None:
    current = int((await api.ok("GET", configmaps(namespace)))["metadata"]["resourceVersion"])
    wanted = current + 1_000_000
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await api.call("GET", configmaps(namespace), params={"resourceVersion": str(wanted)})
    assert loop.time() - started >= 2.9  # the watch cache's wait for freshness first
    assert reply.status == 504, reply.body
    served = re.fullmatch(rf"Timeout: Too large resource version: {wanted}, current: (\d+)", reply.json()["message"])
    assert served is not None and int(served[1]) >= current
    assert reply.body == orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"Timeout: Too large resource version: {wanted}, current: {served[1]}",
            "reason": "Timeout",
            "details": {
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1,
            },
            "code": 504,
        }
    )


async def test_a_get_at_a_future_resource_version_is_504_too_large(api: RawApi, namespace: str) -> None:
    created = await api.ok("POST", configmaps(namespace), configmap("now"))
    wanted = int(created["metadata"]["resourceVersion"]) + 1_000_000
    path = f"{configmaps(namespace)}/now"
    reply = await api.call("GET", path, params={"resourceVersion": str(wanted)})
    assert reply.status == 504 and reply.json()["reason"] == "Timeout"
    assert reply.json()["message"].startswith(f"Timeout: Too large resource version: {wanted}, current: ")
    served = await api.ok("GET", path, params={"resourceVersion": created["metadata"]["resourceVersion"]})
    assert served["metadata"]["uid"] == created["metadata"]["uid"]


async def test_a_list_at_a_revision_reached_while_waiting_is_served(api: RawApi, namespace: str) -> None:
    current = int((await api.ok("GET", configmaps(namespace)))["metadata"]["resourceVersion"])
    waiting = asyncio.ensure_future(
        api.call("GET", configmaps(namespace), params={"resourceVersion": str(current + 1)})
    )
    created = await api.ok("POST", configmaps(namespace), configmap("late"))
    reply = await waiting
    assert reply.status == 200, reply.body
    served = int(reply.json()["metadata"]["resourceVersion"])
    assert served >= current + 1  # never older than asked
    if served >= int(created["metadata"]["resourceVersion"]):
        assert "late" in names(reply.json())


async def test_continue_with_a_resource_version_is_400(api: RawApi, namespace: str) -> None:
    for i in range(3):
        await api.ok("POST", configmaps(namespace), configmap(f"c{i}"))
    page = await api.ok("GET", configmaps(namespace), params={"limit": "1"})
    token, rv = page["metadata"]["continue"], page["metadata"]["resourceVersion"]
    reply = await api.call(
        "GET", configmaps(namespace), params={"limit": "1", "continue": token, "resourceVersion": rv}
    )
    assert reply.status == 400
    assert reply.body == orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "specifying resource version is not allowed when using continue",
            "reason": "BadRequest",
            "code": 400,
        }
    )
    allowed = await api.ok(
        "GET", configmaps(namespace), params={"limit": "1", "continue": token, "resourceVersion": "0"}
    )
    assert names(allowed) == ["c1"]


def test_pages_carry_remaining_item_count_unless_a_selector_filters(cluster: Cluster, namespace: str) -> None:
    with config.new_client_from_config(str(cluster.kubeconfig)) as api_client:
        core = client.CoreV1Api(api_client)
        for i in range(5):  # secrets: no controller adds one to a new namespace
            core.create_namespaced_secret(namespace, {"metadata": {"name": f"r{i}", "labels": {"app": "x"}}})
        first = core.list_namespaced_secret(namespace, limit=2)
        assert first.metadata.remaining_item_count == 3
        second = core.list_namespaced_secret(namespace, limit=2, _continue=first.metadata._continue)
        assert second.metadata.remaining_item_count == 1
        last = core.list_namespaced_secret(namespace, limit=2, _continue=second.metadata._continue)
        assert [c.metadata.name for c in last.items] == ["r4"]
        assert last.metadata.remaining_item_count is None and last.metadata._continue is None
        selected = core.list_namespaced_secret(namespace, limit=2, label_selector="app=x")
        assert selected.metadata._continue and selected.metadata.remaining_item_count is None


async def test_an_expired_continue_token_is_410_with_a_fresh_token_for_the_rest(compacting: Cluster) -> None:
    api = RawApi(compacting.kubeconfig)
    try:
        namespace = "default"
        secrets = f"/api/v1/namespaces/{namespace}/secrets"  # no controller adds one: the list is ours alone
        for name in ("x0", "x1", "x2"):
            await api.ok("POST", secrets, {"metadata": {"name": name}})
        page = await api.ok("GET", secrets, params={"limit": "1"})
        assert names(page) == ["x0"]
        token = page["metadata"]["continue"]
        exact = {"resourceVersion": page["metadata"]["resourceVersion"], "resourceVersionMatch": "Exact"}
        for i in range(2000):  # each write moves the newest revision; compaction follows within 0.2 s
            reply = await api.call("GET", configmaps(namespace), params=exact)
            if reply.status == 410:
                break
            await api.ok("POST", configmaps(namespace), configmap(f"y{i}"))
        assert reply.status == 410
        assert reply.json()["message"] == "The resourceVersion for the provided list is too old."
        expired = await api.call("GET", secrets, params={"limit": "1", "continue": token})
        assert expired.status == 410
        status = expired.json()
        fresh = status["metadata"]["continue"]
        assert expired.body == orjson.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {"continue": fresh},
                "status": "Failure",
                "message": "The provided continue parameter is too old to display a consistent list result. You "
                "can start a new list without the continue parameter, or use the continue token in this response "
                "to retrieve the remainder of the results. Continuing with the provided token results in an "
                "inconsistent list - objects that were created, modified, or deleted between the time the first "
                "chunk was returned and now may show up in the list.",
                "reason": "Expired",
                "code": 410,
            }
        )
        rest = await api.ok("GET", secrets, params={"limit": "2", "continue": fresh})
        assert names(rest) == ["x1", "x2"]  # the remainder, read at the latest revision
        assert int(rest["metadata"]["resourceVersion"]) > int(exact["resourceVersion"])
    finally:
        await api.close()


def test_legacy_discovery_carries_kube_storage_version_hashes(cluster: Cluster) -> None:
    def hashes(path: str) -> dict[str, str]:
        listing = orjson.loads(cluster.kubectl("get", "--raw", path).stdout)
        return {r["name"]: r.get("storageVersionHash") for r in listing["resources"]}

    core, apps, events = hashes("/api/v1"), hashes("/apis/apps/v1"), hashes("/apis/events.k8s.io/v1")
    assert core["pods"] == "xPOwRZ+Yhw8="
    assert core["events"] == events["events"] == "r2yiGXH7wu8="
    assert apps["deployments"] == "8aSe+NMegvE="
    assert core["pods/status"] is None  # subresources carry none
    assert all(h for name, h in core.items() if "/" not in name)
