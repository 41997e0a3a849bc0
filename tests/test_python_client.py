"""The official `kubernetes` Python client against the real `kube-shim up`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster, start_cluster


def api_for(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = api_for(cluster.kubeconfig)
    yield client.CoreV1Api(api)
    api.close()


MINE = {"test": "python-client"}
SELECT = "test=python-client"


def configmap(name: str, value: str = "1") -> dict:
    # labelled: every namespace also holds the cluster's kube-root-ca.crt configmap
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": MINE}, "data": {"v": value}}


def test_crud_and_errors_as_api_exceptions(core: client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, configmap("a"))
    assert created.metadata.resource_version and created.metadata.uid
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, configmap("a"))
    assert exists.value.status == 409 and '"reason":"AlreadyExists"' in exists.value.body.replace(" ", "")
    patched = core.patch_namespaced_config_map("a", namespace, {"data": {"w": "2"}})
    assert patched.data == {"v": "1", "w": "2"}
    listed = core.list_namespaced_config_map(namespace, label_selector=SELECT)
    assert [c.metadata.name for c in listed.items] == ["a"]
    core.delete_namespaced_config_map("a", namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("a", namespace)
    assert missing.value.status == 404


def test_two_updates_from_one_resource_version_exactly_one_conflicts(core: client.CoreV1Api, namespace: str) -> None:
    base = core.create_namespaced_config_map(namespace, configmap("race"))
    results: list[int] = []
    barrier = threading.Barrier(2)

    def update(value: str) -> None:
        body = configmap("race", value)
        body["metadata"]["resourceVersion"] = base.metadata.resource_version
        barrier.wait()
        try:
            core.replace_namespaced_config_map("race", namespace, body)
            results.append(200)
        except ApiException as exc:
            results.append(exc.status)

    threads = [threading.Thread(target=update, args=(v,)) for v in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]


def test_watch_resumes_after_reconnect_with_every_event_once(core: client.CoreV1Api, namespace: str) -> None:
    start = core.list_namespaced_config_map(namespace, label_selector=SELECT).metadata.resource_version
    for i in range(5):
        core.create_namespaced_config_map(namespace, configmap(f"w{i}"))
    seen: list[str] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=5, label_selector=SELECT
    ):
        seen.append(f"{event['type']} {event['object'].metadata.name}")
        if len(seen) == 3:
            w.stop()
    resume = w.resource_version
    for i in range(5, 8):
        core.create_namespaced_config_map(namespace, configmap(f"w{i}"))
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, namespace, resource_version=resume, timeout_seconds=5, label_selector=SELECT
    ):
        seen.append(f"{event['type']} {event['object'].metadata.name}")
        if len(seen) == 8:
            w.stop()
    assert seen == [f"ADDED w{i}" for i in range(8)]


def test_compacted_watch_gets_410_and_relist_recovers(tmp_path: Path) -> None:
    """With a tiny history window, an old resourceVersion is Expired; a fresh list and watch work again."""
    cluster = start_cluster(tmp_path, extra=("--compaction-interval", "0.2", "--compaction-keep", "1"))
    try:
        api = api_for(cluster.kubeconfig)
        core = client.CoreV1Api(api)
        old = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(5):
            core.create_namespaced_config_map("default", configmap(f"c{i}"))
        expired = None
        for _ in range(200):  # compaction runs every 0.2 s: wait for it to pass `old`
            try:
                for _event in watch.Watch().stream(
                    core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=1
                ):
                    pass
            except ApiException as exc:
                expired = exc
                break
        assert expired is not None and expired.status == 410
        raw = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}")
        assert '"code":410' in raw.stdout and "Expired" in raw.stdout
        relisted = core.list_namespaced_config_map("default", label_selector=SELECT)
        assert sorted(c.metadata.name for c in relisted.items)[:5] == [f"c{i}" for i in range(5)]
        core.create_namespaced_config_map("default", configmap("after"))
        names = [
            e["object"].metadata.name
            for e in watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=relisted.metadata.resource_version,
                timeout_seconds=2,
            )
        ]
        assert names == ["after"]
        api.close()
    finally:
        cluster.stop()


def test_restart_keeps_every_object_and_the_revision(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path)
    api = api_for(cluster.kubeconfig)
    core = client.CoreV1Api(api)
    for i in range(20):
        core.create_namespaced_config_map("default", configmap(f"keep{i}", str(i)))
    before = core.list_namespaced_config_map("default", label_selector=SELECT)
    api.close()
    assert cluster.stop() == 0
    cluster = start_cluster(tmp_path, port=cluster.port)
    try:
        api = api_for(cluster.kubeconfig)
        core = client.CoreV1Api(api)
        after = core.list_namespaced_config_map("default", label_selector=SELECT)
        assert [(c.metadata.name, c.data, c.metadata.resource_version) for c in after.items] == [
            (c.metadata.name, c.data, c.metadata.resource_version) for c in before.items
        ]
        assert int(after.metadata.resource_version) >= int(before.metadata.resource_version)
        created = core.create_namespaced_config_map("default", configmap("new"))
        assert int(created.metadata.resource_version) > int(before.metadata.resource_version)
        api.close()
    finally:
        cluster.stop()
