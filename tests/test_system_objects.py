"""What every cluster keeps: the system namespaces cannot be deleted, the `kubernetes` service comes back when
deleted, and the collection of namespaces has no DELETE (kube serves no deletecollection there)."""

from __future__ import annotations

import json

import pytest

from tests.cluster import Cluster, wait_until
from tests.rawapi import RawApi


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_a_system_namespace_may_not_be_deleted(cluster: Cluster, name: str) -> None:
    refused = cluster.kubectl("delete", "namespace", name, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): namespaces "{name}" is forbidden: this namespace may not be deleted'
    )
    phase = cluster.kubectl("get", "namespace", name, "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Active"


def test_the_kubernetes_service_comes_back_after_a_delete(cluster: Cluster) -> None:
    before = json.loads(cluster.kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json").stdout)
    cluster.kubectl("delete", "service", "kubernetes", "-n", "default")

    def recreated() -> dict | None:
        got = cluster.kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json", check=False)
        return json.loads(got.stdout) if got.returncode == 0 else None

    after = wait_until(recreated, timeout=30, what="the kubernetes service to be re-created")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["clusterIP"] == "10.96.0.1"
    assert after["spec"]["ports"] == before["spec"]["ports"]


async def test_deleting_the_collection_of_namespaces_is_not_allowed(cluster: Cluster, api: RawApi) -> None:
    cluster.kubectl("create", "namespace", "survivor")
    reply = await api.call("DELETE", "/api/v1/namespaces")
    assert reply.status == 405
    assert reply.json()["reason"] == "MethodNotAllowed"
    assert reply.json()["message"] == "the server does not allow this method on the requested resource"
    assert cluster.kubectl("get", "namespace", "survivor", "-o", "name").stdout.strip() == "namespace/survivor"
