"""Every namespace holds a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap, as in real clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, Resource, load_kubeconfig
from shim.controllers.serviceaccount import RootCACertPublisher, ServiceAccountsController
from shim.machinery.resources import CONFIGMAPS, SERVICE_ACCOUNTS
from tests.cluster import Cluster
from tests.controllerkit import running
from tests.workloads import watch_until

Obj = dict[str, Any]
DESCRIPTION = "kubernetes.io/description"


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    access = load_kubeconfig(cluster.kubeconfig)
    async with ApiClient(access) as client:
        controllers = (ServiceAccountsController(client), RootCACertPublisher(client, root_ca=access.ca_pem))
        async with running(*controllers):
            yield client


async def named(api: ApiClient, resource: Resource, namespace: str, name: str, predicate: Any = bool) -> Obj:
    return await watch_until(
        api,
        resource,
        namespace,
        lambda objs: next((o for o in objs if o["metadata"]["name"] == name and predicate(o)), None),
        what=f"{resource.plural}/{name}",
    )


async def test_a_new_namespace_gets_the_default_account_and_the_root_ca(
    api: ApiClient, namespace: str, cluster: Cluster
):
    account = await named(api, SERVICE_ACCOUNTS, namespace, "default")
    assert account["metadata"]["namespace"] == namespace
    ca = await named(api, CONFIGMAPS, namespace, "kube-root-ca.crt")
    assert ca["data"] == {"ca.crt": load_kubeconfig(cluster.kubeconfig).ca_pem.decode()}
    assert ca["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert "verify the kube-apiserver" in ca["metadata"]["annotations"][DESCRIPTION]


async def test_a_deleted_default_account_is_created_again(api: ApiClient, namespace: str):
    first = await named(api, SERVICE_ACCOUNTS, namespace, "default")
    await api.delete(SERVICE_ACCOUNTS, "default", namespace)
    second = await named(
        api, SERVICE_ACCOUNTS, namespace, "default", lambda a: a["metadata"]["uid"] != first["metadata"]["uid"]
    )
    assert second["metadata"]["name"] == "default"


async def test_the_root_ca_is_recreated_when_deleted_and_restored_when_changed(api: ApiClient, namespace: str):
    original = await named(api, CONFIGMAPS, namespace, "kube-root-ca.crt")
    await api.delete(CONFIGMAPS, "kube-root-ca.crt", namespace)
    recreated = await named(
        api, CONFIGMAPS, namespace, "kube-root-ca.crt", lambda c: c["metadata"]["uid"] != original["metadata"]["uid"]
    )
    assert recreated["data"] == original["data"]

    await api.patch(CONFIGMAPS, "kube-root-ca.crt", {"data": {"ca.crt": "tampered", "extra": "x"}}, namespace)
    restored = await named(api, CONFIGMAPS, namespace, "kube-root-ca.crt", lambda c: c["data"] == original["data"])
    assert restored["metadata"]["annotations"][DESCRIPTION] == original["metadata"]["annotations"][DESCRIPTION]
