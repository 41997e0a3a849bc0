"""Objects come back as kube's Go types encode them: empty maps and lists of `omitempty` fields are left out,
and timestamps are UTC with `Z`, whole seconds (`metav1.Time`) or six decimals (`metav1.MicroTime`),
whatever the client sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client, config

from tests.cluster import Cluster


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def get_json(cluster: Cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_removing_the_last_label_and_annotation_leaves_no_empty_maps(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "x", "-n", namespace, "--from-literal=k=v")
    cluster.kubectl("label", "configmap", "x", "-n", namespace, "a=b")
    cluster.kubectl("annotate", "configmap", "x", "-n", namespace, "note=hi")
    cluster.kubectl("label", "configmap", "x", "-n", namespace, "a-")
    cluster.kubectl("annotate", "configmap", "x", "-n", namespace, "note-")
    meta = get_json(cluster, "configmap", "x", "-n", namespace)["metadata"]
    assert "labels" not in meta and "annotations" not in meta
    shown = cluster.kubectl("get", "configmap", "x", "-n", namespace, "-o", "yaml").stdout
    assert "labels:" not in shown and "annotations:" not in shown


def test_removing_the_last_taint_leaves_no_empty_list(cluster: Cluster) -> None:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "go-encoding-node"},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}], "unschedulable": True}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(node))
    try:
        cluster.kubectl("taint", "node", "go-encoding-node", "k:NoSchedule-")
        cluster.kubectl("uncordon", "go-encoding-node")
        spec = get_json(cluster, "node", "go-encoding-node")["spec"]
        assert "taints" not in spec and "unschedulable" not in spec
    finally:
        cluster.kubectl("delete", "node", "go-encoding-node")


def test_an_empty_struct_and_a_required_list_stay(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "service", "clusterip", "s", "--tcp=80:80", "-n", namespace)
    assert get_json(cluster, "service", "s", "-n", namespace)["status"] == {"loadBalancer": {}}


def test_timestamps_are_stored_as_kube_writes_them(core: client.CoreV1Api, cluster: Cluster, namespace: str) -> None:
    plus_one = timezone(timedelta(hours=1))
    sent = datetime(2026, 12, 7, 10, 30, 15, 123456, tzinfo=plus_one)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="evt"),
        involved_object=client.V1ObjectReference(kind="ConfigMap", name="x", namespace=namespace),
        reason="Tested", message="a timestamp with an offset", type="Normal",
        first_timestamp=sent, last_timestamp=sent, event_time=sent, count=1,
        reporting_component="tests", reporting_instance="tests", action="Test",
    )  # fmt: skip
    core.create_namespaced_event(namespace, event)
    stored = get_json(cluster, "events.v1.", "evt", "-n", namespace)
    assert stored["firstTimestamp"] == "2026-12-07T09:30:15Z"
    assert stored["lastTimestamp"] == "2026-12-07T09:30:15Z"
    assert stored["eventTime"] == "2026-12-07T09:30:15.123456Z"
    listed = cluster.kubectl("events", "-n", namespace)
    assert "a timestamp with an offset" in listed.stdout
