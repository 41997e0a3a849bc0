"""core/v1 and events.k8s.io/v1 serve one set of Events, each in its own shape (as kube-apiserver does)."""

from __future__ import annotations

import json

from tests.cluster import Cluster

V1_EVENT = """
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: hello}
eventTime: "2026-11-21T21:00:00.000000Z"
reportingController: example.com/me
reportingInstance: me-1
action: Testing
reason: Hello
note: written through events.k8s.io
type: Normal
regarding: {kind: Pod, name: p, namespace: NS}
"""


def test_an_event_written_through_either_api_is_read_through_both(cluster: Cluster, namespace: str) -> None:
    k = lambda *a, **kw: cluster.kubectl("-n", namespace, *a, **kw)  # noqa: E731
    k("create", "-f", "-", stdin=V1_EVENT.replace("NS", namespace))
    core = json.loads(k("get", "events.v1.", "hello", "-o", "json").stdout)
    assert (core["apiVersion"], core["message"], core["involvedObject"]["name"]) == (
        "v1", "written through events.k8s.io", "p",
    )  # fmt: skip
    assert core["reportingComponent"] == "example.com/me"

    k("create", "configmap", "c")  # its own writes record no events; make one through core/v1 instead
    core_event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "legacy"},
        "involvedObject": {"kind": "ConfigMap", "name": "c", "namespace": namespace},
        "reason": "Old", "message": "written through core/v1", "type": "Warning", "count": 3,
        "source": {"component": "tester"},
    }  # fmt: skip
    k("create", "-f", "-", stdin=json.dumps(core_event))
    listed = json.loads(k("get", "events.v1.events.k8s.io", "-o", "json").stdout)["items"]
    by_name = {e["metadata"]["name"]: e for e in listed}
    legacy = by_name["legacy"]
    assert legacy["apiVersion"] == "events.k8s.io/v1"
    assert (legacy["note"], legacy["regarding"]["name"], legacy["deprecatedCount"]) == (
        "written through core/v1",
        "c",
        3,
    )
    assert legacy["deprecatedSource"] == {"component": "tester"}
    assert "message" not in legacy and "involvedObject" not in legacy

    selected = k(
        "get", "--raw", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events?fieldSelector=regarding.name%3Dc"
    )
    assert [e["metadata"]["name"] for e in json.loads(selected.stdout)["items"]] == ["legacy"]
    k("delete", "events.v1.events.k8s.io", "legacy")
    assert "legacy" not in k("get", "events.v1.", "-o", "name").stdout
