"""What kube's controllers and scheduler write, as a 1.33 cluster shows it (issue 18, item 23).

Where kube's expected text comes from:
- Namespace conditions: pkg/controller/namespace/deletion/status_condition_utils.go (`okReasons`, `okMessages`,
  `ProcessContentTotals`: "Some resources are remaining: pods. has 1 resource instances", "Some content in the
  namespace has finalizers remaining: <finalizer> in N resource instances", sorted; condition order is
  `conditionTypes`) and namespaced_resources_deleter.go (which content counts as remaining).
- Scheduler events: kube-scheduler records through client-go's tools/events (events.k8s.io/v1): schedule_one.go
  `Eventf(pod, nil, Warning, "FailedScheduling", "Scheduling", msg)` and `Eventf(..., Normal, "Scheduled",
  "Binding", "Successfully assigned %v/%v to %v")`; recorder.go makeEvent (name `<pod>.<hex nanos>`, eventTime
  as MicroTime, reportingInstance `<controller>-<hostname>`, no source/count); event_broadcaster.go
  recordToSink (an isomorphic repeat patches `series` {count: 2, lastObservedTime}; later repeats count in memory
  until finishSeries writes the final count, 6 minutes after the last). kubectl events and
  describe print such a series as `<age> (x2 over <age>)`, From `default-scheduler`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shim.client import ApiClient, events_v1, load_kubeconfig
from shim.client.events_v1 import EVENTS_V1, SeriesRecorder
from shim.controllers.namespace_conditions import ContentReport, update_conditions
from shim.machinery.resources import CONFIGMAPS
from tests.cluster import Cluster, start_cluster, wait_until

HOLD = "example.com/hold"
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
UNSCHEDULABLE = (
    "0/1 nodes are available: 1 node(s) were unschedulable. "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Cluster]:
    """API server and scheduler only: no controller taints the made-up node or adds service accounts."""
    running = start_cluster(tmp_path, extra=("--no-controllers",))
    yield running
    running.stop()


def conditions(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    shown = json.loads(cluster.kubectl("get", "namespace", namespace, "-o", "json").stdout)
    return shown.get("status", {}).get("conditions") or []


def test_a_terminating_namespace_says_what_remains_and_which_finalizers_hold_it(
    cluster: Cluster, namespace: str
) -> None:
    held = {"metadata": {"finalizers": [HOLD]}}
    cluster.kubectl("create", "configmap", "kept", "-n", namespace)
    cluster.kubectl("run", "p", "-n", namespace, "--image=busybox", "--overrides", json.dumps(held))
    cluster.kubectl("patch", "configmap", "kept", "-n", namespace, "--type=merge", "-p", json.dumps(held))
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")

    def remaining_reported() -> list[dict[str, Any]] | None:
        found = conditions(cluster, namespace)
        return found if any(c["type"] == "NamespaceContentRemaining" for c in found) else None

    found = wait_until(remaining_reported, what="the namespace controller's conditions")
    assert all(c["lastTransitionTime"].endswith("Z") for c in found)
    assert [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in found] == [
        {
            "type": "NamespaceDeletionDiscoveryFailure",
            "status": "False",
            "reason": "ResourcesDiscovered",
            "message": "All resources successfully discovered",
        },
        {
            "type": "NamespaceDeletionGroupVersionParsingFailure",
            "status": "False",
            "reason": "ParsedGroupVersions",
            "message": "All legacy kube types successfully parsed",
        },
        {
            "type": "NamespaceDeletionContentFailure",
            "status": "False",
            "reason": "ContentDeleted",
            "message": "All content successfully deleted, may be waiting on finalization",
        },
        {
            "type": "NamespaceContentRemaining",
            "status": "True",
            "reason": "SomeResourcesRemain",
            "message": "Some resources are remaining: configmaps. has 1 resource instances, "
            "pods. has 1 resource instances",
        },
        {
            "type": "NamespaceFinalizersRemaining",
            "status": "True",
            "reason": "SomeFinalizersRemain",
            "message": f"Some content in the namespace has finalizers remaining: {HOLD} in 2 resource instances",
        },
    ]
    described = cluster.kubectl("describe", "namespace", namespace).stdout
    assert "NamespaceContentRemaining" in described and "SomeResourcesRemain" in described

    release = json.dumps({"metadata": {"finalizers": None}})
    for kind, name in (("configmap", "kept"), ("pod", "p")):
        cluster.kubectl("patch", kind, name, "-n", namespace, "--type=merge", "-p", release)
    gone = cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=60s", check=False)
    assert gone.returncode == 0, gone.stderr


def test_scheduler_events_are_events_k8s_io_with_a_series_for_repeats(bare: Cluster) -> None:
    cordoned = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cordoned"}, "spec": {"unschedulable": True}}
    bare.kubectl("create", "serviceaccount", "default")
    bare.kubectl("create", "-f", "-", stdin=json.dumps(cordoned))
    room = {"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}
    bare.kubectl("patch", "node", "cordoned", "--subresource=status", "--type=merge", "-p", json.dumps(room))
    bare.kubectl("run", "p", "--image=busybox")

    def failed_scheduling() -> list[dict[str, Any]]:
        listed = json.loads(bare.kubectl("get", "events.events.k8s.io", "-o", "json").stdout)["items"]
        return [e for e in listed if e["reason"] == "FailedScheduling"]

    attempts = itertools.count()

    def repeated() -> dict[str, Any] | None:
        # each label change requeues the pod; once its status stops changing, the failures are isomorphic
        bare.kubectl("label", "node", "cordoned", f"attempt={next(attempts)}", "--overwrite")
        return next((e for e in failed_scheduling() if e.get("series")), None)

    event = wait_until(repeated, what="a FailedScheduling series")
    assert MICRO_TIME.fullmatch(event["eventTime"]) and MICRO_TIME.fullmatch(event["series"]["lastObservedTime"])
    assert event["series"]["count"] == 2
    assert event["metadata"]["name"].startswith("p.")
    assert event["reportingInstance"].startswith("default-scheduler-")
    assert {k: event.get(k) for k in ("action", "reason", "type", "note", "reportingController")} == {
        "action": "Scheduling",
        "reason": "FailedScheduling",
        "type": "Warning",
        "note": UNSCHEDULABLE,
        "reportingController": "default-scheduler",
    }
    assert (event["regarding"]["kind"], event["regarding"]["name"]) == ("Pod", "p")
    assert "deprecatedCount" not in event and event.get("deprecatedSource") in (None, {})

    series_line = rf"\S+ \(x2 over \S+\)\s+Warning\s+FailedScheduling\s+Pod/p\s+{re.escape(UNSCHEDULABLE)}"
    assert re.search(series_line, bare.kubectl("events", "--for", "pod/p").stdout)
    described = bare.kubectl("describe", "pod", "p").stdout
    assert re.search(r"Warning\s+FailedScheduling\s+\S+ \(x2 over \S+\)\s+default-scheduler\s+", described)

    bare.kubectl("uncordon", "cordoned")

    def scheduled() -> dict[str, Any] | None:
        listed = json.loads(bare.kubectl("get", "events.events.k8s.io", "-o", "json").stdout)["items"]
        return next((e for e in listed if e["reason"] == "Scheduled"), None)

    bound = wait_until(scheduled, what="the Scheduled event")
    assert (bound["action"], bound["note"], bound["reportingController"]) == (
        "Binding",
        "Successfully assigned default/p to cordoned",
        "default-scheduler",
    )


async def test_an_ended_series_gets_its_final_count_written(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """client-go's finishSeries: repeats after the second only count in memory until the series ends."""
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as api:
        subject = await api.create(CONFIGMAPS, {"metadata": {"name": "subject"}}, namespace)
        recorder = SeriesRecorder(api, "test-controller", instance="test-controller-h1")
        for note in ("first", "second", "third"):  # the note is not part of an event's identity
            await recorder.event(subject, None, "Normal", "Poked", "Poking", note)
        [event] = (await api.list(EVENTS_V1, namespace))["items"]
        assert (event["note"], event["series"]["count"], event["reportingInstance"]) == (
            "first",
            2,
            "test-controller-h1",
        )
        await recorder.tick()  # the series is still running: nothing is written
        assert (await api.list(EVENTS_V1, namespace))["items"][0]["series"]["count"] == 2
        monkeypatch.setattr(events_v1, "FINISH_AFTER", 0.0)
        await recorder.tick()
        [ended] = (await api.list(EVENTS_V1, namespace))["items"]
        assert ended["series"]["count"] == 3
        assert MICRO_TIME.fullmatch(ended["series"]["lastObservedTime"])


def test_content_failures_are_worded_as_kube_words_them() -> None:
    report = ContentReport(
        discovery_error="unable to retrieve the complete list of server APIs: x.io/v1: boom",
        content_errors=["widgets.x.io is forbidden: no", 'configmaps "a" is forbidden: no'],
    )
    assert not report.done
    status: dict[str, Any] = {}
    assert update_conditions(status, report, "2026-01-01T00:00:00Z")
    by_type = {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}
    assert by_type["NamespaceDeletionDiscoveryFailure"] == (
        "True",
        "DiscoveryFailed",
        "unable to retrieve the complete list of server APIs: x.io/v1: boom",
    )
    assert by_type["NamespaceDeletionContentFailure"] == (
        "True",
        "ContentDeletionFailed",
        'Failed to delete all resource types, 2 remaining: configmaps "a" is forbidden: no, '
        "widgets.x.io is forbidden: no",
    )
    assert not update_conditions(status, report, "2026-01-01T00:00:09Z")  # unchanged: no write, times kept
    assert update_conditions(status, ContentReport(), "2026-01-01T00:00:10Z")
    flipped = next(c for c in status["conditions"] if c["type"] == "NamespaceDeletionDiscoveryFailure")
    assert (flipped["status"], flipped["lastTransitionTime"]) == ("False", "2026-01-01T00:00:10Z")
