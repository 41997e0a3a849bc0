"""Watches as kube-apiserver serves them: bookmarks that carry the newest resourceVersion of the resource type
and come 2 s before the deadline, watch-list (`sendInitialEvents`) with its `k8s.io/initial-events-end`
bookmark, kube's validation of watch options, and metadata-only watches."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster import Cluster
from tests.rawapi import RawApi

METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


def configmaps(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def configmap(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"secret-ish": "payload"}}


def other_namespace(cluster: Cluster, namespace: str) -> str:
    other = namespace + "-other"
    cluster.kubectl("create", "namespace", other)
    return other


async def test_a_bookmark_comes_before_the_timeout_with_the_newest_resource_version(
    api: RawApi, cluster: Cluster, namespace: str
) -> None:
    created = await api.ok("POST", configmaps(namespace), configmap("watched"))
    other = other_namespace(cluster, namespace)
    since = created["metadata"]["resourceVersion"]
    watch = await api.watch(
        configmaps(namespace), {"allowWatchBookmarks": "true", "timeoutSeconds": "4", "resourceVersion": since}
    )
    elsewhere = await api.ok("POST", configmaps(other), configmap("elsewhere"))  # same type, not this watch's
    events = []
    while (event := await watch.next()) is not None:
        events.append(event)
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, f"no bookmark before the watch ended: {events}"
    newest = int(bookmarks[-1]["object"]["metadata"]["resourceVersion"])
    assert newest >= int(elsewhere["metadata"]["resourceVersion"])

    resumed = await api.watch(configmaps(namespace), {"resourceVersion": str(newest)})  # no 410, nothing replayed
    try:
        later = await api.ok("POST", configmaps(namespace), configmap("later"))
        event = await resumed.next()
        assert event is not None and event["type"] == "ADDED"
        assert event["object"]["metadata"]["name"] == "later"
        assert event["object"]["metadata"]["resourceVersion"] == later["metadata"]["resourceVersion"]
    finally:
        resumed.close()


async def test_watch_list_sends_the_state_then_the_initial_events_end_bookmark(api: RawApi, namespace: str) -> None:
    for name in ("a", "b"):
        await api.ok("POST", configmaps(namespace), configmap(name))
    watch = await api.watch(
        configmaps(namespace),
        {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true"},
    )
    try:
        seen = []
        while True:
            event = await watch.next()
            assert event is not None
            if event["type"] == "BOOKMARK":
                break
            seen.append((event["type"], event["object"]["metadata"]["name"]))
        assert {("ADDED", "a"), ("ADDED", "b")} <= set(seen)
        assert event["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        end = int(event["object"]["metadata"]["resourceVersion"])
        created = await api.ok("POST", configmaps(namespace), configmap("c"))
        after = await watch.next()
        assert after is not None and (after["type"], after["object"]["metadata"]["name"]) == ("ADDED", "c")
        assert int(created["metadata"]["resourceVersion"]) > end
    finally:
        watch.close()


async def test_watch_list_from_a_resource_version_still_sends_the_state(api: RawApi, namespace: str) -> None:
    made = await api.ok("POST", configmaps(namespace), configmap("old"))
    watch = await api.watch(
        configmaps(namespace),
        {
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "resourceVersion": made["metadata"]["resourceVersion"],
        },
    )
    try:
        events = await watch.until("ADDED", "old")
        assert events[-1]["object"]["metadata"]["name"] == "old"
    finally:
        watch.close()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"sendInitialEvents": "true"},
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ),
        (
            {"resourceVersionMatch": "NotOlderThan", "resourceVersion": "1"},
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents "
            "is provided",
        ),
    ],
)
async def test_invalid_watch_options_are_refused_as_kube_refuses_them(
    api: RawApi, namespace: str, params: dict[str, str], message: str
) -> None:
    reply = await api.call("GET", configmaps(namespace), params={"watch": "true", **params})
    assert reply.status == 422
    body = reply.json()
    assert body["reason"] == "Invalid"
    assert body["message"] == f'ListOptions.meta.k8s.io "" is invalid: {message}'
    assert body["details"]["kind"] == "ListOptions" and body["details"]["group"] == "meta.k8s.io"


async def test_a_metadata_only_watch_streams_metadata_only(api: RawApi, namespace: str) -> None:
    await api.ok("POST", configmaps(namespace), configmap("meta"))
    watch = await api.watch(configmaps(namespace), {"resourceVersion": "0"}, headers={"Accept": METADATA})
    try:
        events = await watch.until("ADDED", "meta")
        for event in events:
            assert event["object"]["kind"] == "PartialObjectMetadata"
            assert event["object"]["apiVersion"] == "meta.k8s.io/v1"
            assert "data" not in event["object"]
        await api.ok("DELETE", configmaps(namespace) + "/meta")
        gone = await watch.until("DELETED", "meta")
        assert gone[-1]["object"]["kind"] == "PartialObjectMetadata" and "data" not in gone[-1]["object"]
    finally:
        watch.close()
