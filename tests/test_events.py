"""EventRecorder correlates events as client-go does: repeats count on one Event, floods of similar ones combine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, load_kubeconfig
from shim.client.events import EventRecorder
from shim.machinery.resources import CONFIGMAPS, EVENTS
from tests.cluster import Cluster

Obj = dict[str, Any]


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        yield client


@pytest.fixture
async def subject(api: ApiClient, namespace: str) -> Obj:
    return await api.create(CONFIGMAPS, {"metadata": {"name": "subject"}}, namespace)


async def events_of(api: ApiClient, namespace: str) -> list[Obj]:
    return (await api.list(EVENTS, namespace))["items"]


async def test_a_repeated_event_counts_on_one_object(api: ApiClient, namespace: str, subject: Obj):
    recorder = EventRecorder(api, "test-controller", host="h1")
    for _ in range(3):
        await recorder.event(subject, "Normal", "Poked", "poked the config map")
    [event] = await events_of(api, namespace)
    assert event["count"] == 3
    assert event["firstTimestamp"] <= event["lastTimestamp"]
    assert event["source"] == {"component": "test-controller", "host": "h1"}
    assert event["involvedObject"] == {
        "kind": "ConfigMap",
        "namespace": namespace,
        "name": "subject",
        "uid": subject["metadata"]["uid"],
        "apiVersion": "v1",
        "resourceVersion": subject["metadata"]["resourceVersion"],
    }
    assert event["metadata"]["name"].startswith("subject.")


async def test_concurrent_repeats_still_count_on_one_object(api: ApiClient, namespace: str, subject: Obj):
    recorder = EventRecorder(api, "test-controller")
    await asyncio.gather(*(recorder.event(subject, "Warning", "Burst", "again") for _ in range(8)))
    [event] = await events_of(api, namespace)
    assert (event["type"], event["count"]) == ("Warning", 8)


async def test_many_similar_events_are_combined(api: ApiClient, namespace: str, subject: Obj):
    recorder = EventRecorder(api, "test-controller")
    for i in range(12):
        await recorder.event(subject, "Warning", "Failed", f"attempt {i} failed")
    events = await events_of(api, namespace)
    messages = sorted(e["message"] for e in events if not e["message"].startswith("(combined"))
    assert messages == sorted(f"attempt {i} failed" for i in range(9))
    [combined] = [e for e in events if e["message"].startswith("(combined")]
    assert combined["message"] == "(combined from similar events): attempt 11 failed"
    assert combined["count"] == 3


async def test_a_different_reason_or_object_is_a_different_event(api: ApiClient, namespace: str, subject: Obj):
    other = await api.create(CONFIGMAPS, {"metadata": {"name": "other"}}, namespace)
    recorder = EventRecorder(api, "test-controller")
    await recorder.event(subject, "Normal", "A", "same message")
    await recorder.event(subject, "Normal", "B", "same message")
    await recorder.event(other, "Normal", "A", "same message")
    events = await events_of(api, namespace)
    assert sorted((e["involvedObject"]["name"], e["reason"], e["count"]) for e in events) == [
        ("other", "A", 1),
        ("subject", "A", 1),
        ("subject", "B", 1),
    ]
