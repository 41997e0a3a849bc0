"""What a write claims about the object it changes must hold, as kube checks it: the eviction's name, the uid a
PUT or patch carries, and no resourceVersion on a create."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.cluster import Cluster


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def pod(name: str) -> dict:
    spec = {"schedulerName": "nobody", "containers": [{"name": "c", "image": "x"}]}
    return {"metadata": {"name": name}, "spec": spec}


def test_an_eviction_naming_another_pod_is_refused(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod("a"))
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="b", namespace=namespace))
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod_eviction("a", namespace, eviction)
    assert refused.value.status == 400
    body = json.loads(refused.value.body)
    assert body["reason"] == "BadRequest"
    assert body["message"] == "name in URL does not match name in Eviction object"
    assert core.read_namespaced_pod("a", namespace).metadata.deletion_timestamp is None


def test_a_put_or_patch_carrying_another_uid_is_a_conflict(core: client.CoreV1Api, namespace: str) -> None:
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "1"}})
    wrong = "00000000-0000-0000-0000-000000000000"
    expected = (  # kube's storage precondition error, quoted whole (storage/errors.go StorageError)
        f'Operation cannot be fulfilled on configmaps "c": StorageError: invalid object, Code: 4, '
        f"Key: /registry/configmaps/{namespace}/c, ResourceVersion: 0, AdditionalErrorMsg: "
        f"Precondition failed: UID in precondition: {wrong}, UID in object meta: {made.metadata.uid}"
    )
    replaced = {"metadata": {"name": "c", "uid": wrong}, "data": {"k": "2"}}
    with pytest.raises(ApiException) as put:
        core.replace_namespaced_config_map("c", namespace, replaced)
    with pytest.raises(ApiException) as patch:
        core.patch_namespaced_config_map("c", namespace, {"metadata": {"uid": wrong}, "data": {"k": "3"}})
    for refused in (put.value, patch.value):
        assert refused.status == 409
        body = json.loads(refused.body)
        assert (body["reason"], body["message"]) == ("Conflict", expected)
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "1"}


def test_a_create_carrying_a_resource_version_is_refused(core: client.CoreV1Api, namespace: str) -> None:
    # kubectl clears it before a create; the Python client sends what it is given
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": "orig"}})
    copy = {"metadata": {"name": "copy", "resourceVersion": made.metadata.resource_version}}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map(namespace, copy)
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["message"] == "resourceVersion should not be set on objects to be created"
    with pytest.raises(ApiException) as absent:
        core.read_namespaced_config_map("copy", namespace)
    assert absent.value.status == 404
