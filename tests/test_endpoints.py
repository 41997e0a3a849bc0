"""Endpoints and EndpointSlices follow a Service's pods, in a real `kube-shim up`.

No kubelet here: pods get their IPs and readiness from `PATCH pods/{name}/status`, as a kubelet would
report them. The controller runs in the test process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shim.client import ApiClient, ApiException, load_kubeconfig
from shim.controllers.endpoints import EndpointsController
from shim.controllers.garbagecollector import GarbageCollector
from shim.machinery.resources import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES
from tests.cluster import Cluster
from tests.controllerkit import running
from tests.workloads import watch_until

Obj = dict[str, Any]


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(cluster.kubeconfig)) as client:
        controller = EndpointsController(client)
        async with running(controller):
            yield client


def service(name: str, target_port: int | str = "web", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": target_port}], **spec},
    }


async def start_pod(
    api: ApiClient, namespace: str, name: str, app: str, ip: str, ready: bool, port: str = "web", node: str = "n1"
) -> Obj:
    """A pod bound to `node`, Running with `ip`, Ready or not (what a kubelet would report)."""
    body = {
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "i", "ports": [{"name": port, "containerPort": 8080}]}],
        },
    }
    await api.create(PODS, body, namespace)
    return await set_ready(api, namespace, name, ready, ip)


async def set_ready(api: ApiClient, namespace: str, name: str, ready: bool, ip: str | None = None) -> Obj:
    status: Obj = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return await api.patch(PODS, name, {"status": status}, namespace, "status")


async def endpoints_where(api: ApiClient, namespace: str, name: str, predicate: Any, what: str) -> Obj:
    return await watch_until(
        api,
        ENDPOINTS,
        namespace,
        lambda eps: next((e for e in eps if e["metadata"]["name"] == name and predicate(e)), None),
        what=what,
    )


async def slices_where(api: ApiClient, namespace: str, name: str, predicate: Any, what: str) -> list[Obj]:
    def of_service(items: list[Obj]) -> list[Obj] | None:
        found = [s for s in items if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name]
        return found if predicate(found) else None

    return await watch_until(api, ENDPOINT_SLICES, namespace, of_service, what=what)


def ips(addresses: list[Obj] | None) -> list[str]:
    return [a["ip"] for a in addresses or ()]


def by_pod(slices: list[Obj]) -> dict[str, Obj]:
    return {e["targetRef"]["name"]: e for s in slices for e in s["endpoints"]}


async def test_ready_and_unready_pods_with_a_named_target_port(api: ApiClient, namespace: str):
    svc = await api.create(SERVICES, service("web"), namespace)
    pods = {
        "web-1": await start_pod(api, namespace, "web-1", "web", "10.1.0.2", ready=True),
        "web-2": await start_pod(api, namespace, "web-2", "web", "10.1.0.1", ready=True),
        "web-3": await start_pod(api, namespace, "web-3", "web", "10.1.0.3", ready=False),
    }
    await start_pod(api, namespace, "other", "db", "10.1.0.9", ready=True)

    ep = await endpoints_where(
        api, namespace, "web", lambda e: len(ips((e.get("subsets") or [{}])[0].get("addresses"))) == 2, "2 ready"
    )
    assert ep["metadata"]["labels"] == {"team": "a"}
    [subset] = ep["subsets"]
    assert ips(subset["addresses"]) == ["10.1.0.1", "10.1.0.2"]
    assert ips(subset["notReadyAddresses"]) == ["10.1.0.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert subset["addresses"][0] == {
        "ip": "10.1.0.1",
        "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": namespace, "name": "web-2", "uid": pods["web-2"]["metadata"]["uid"]},
    }

    [eps] = await slices_where(api, namespace, "web", lambda s: len(s) == 1 and len(s[0]["endpoints"]) == 3, "3")
    assert eps["addressType"] == "IPv4"
    assert eps["metadata"]["labels"] == {
        "team": "a",
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    assert eps["metadata"]["name"].startswith("web-")
    [owner] = eps["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "v1",
        "kind": "Service",
        "name": "web",
        "uid": svc["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    endpoints = by_pod([eps])
    assert endpoints["web-1"]["addresses"] == ["10.1.0.2"]
    assert endpoints["web-1"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert endpoints["web-3"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert endpoints["web-3"]["nodeName"] == "n1"


async def test_endpoints_follow_readiness_changes_and_deletions(api: ApiClient, namespace: str):
    await api.create(SERVICES, service("app", target_port=9000), namespace)
    await start_pod(api, namespace, "a", "app", "10.2.0.1", ready=True)
    await start_pod(api, namespace, "b", "app", "10.2.0.2", ready=False)
    await endpoints_where(api, namespace, "app", lambda e: e.get("subsets"), "first endpoints")

    await set_ready(api, namespace, "b", True)
    ep = await endpoints_where(
        api, namespace, "app", lambda e: ips(e["subsets"][0].get("addresses")) == ["10.2.0.1", "10.2.0.2"], "b ready"
    )
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 9000, "protocol": "TCP"}]
    assert "notReadyAddresses" not in ep["subsets"][0]

    await api.delete(PODS, "a", namespace, gracePeriodSeconds=0)
    await endpoints_where(
        api, namespace, "app", lambda e: ips(e["subsets"][0].get("addresses")) == ["10.2.0.2"], "a gone"
    )
    await slices_where(api, namespace, "app", lambda s: set(by_pod(s)) == {"b"}, "a gone from the slice")

    await api.delete(PODS, "b", namespace, gracePeriodSeconds=0)
    ep = await endpoints_where(api, namespace, "app", lambda e: not e.get("subsets"), "no endpoints")
    [placeholder] = await slices_where(api, namespace, "app", lambda s: not by_pod(s), "an empty slice")
    assert placeholder["endpoints"] in ([], None)


async def test_publish_not_ready_addresses(api: ApiClient, namespace: str):
    await api.create(SERVICES, service("pub", publishNotReadyAddresses=True), namespace)
    await start_pod(api, namespace, "p", "pub", "10.3.0.1", ready=False)
    ep = await endpoints_where(api, namespace, "pub", lambda e: e.get("subsets"), "endpoints")
    assert ips(ep["subsets"][0]["addresses"]) == ["10.3.0.1"]
    assert "notReadyAddresses" not in ep["subsets"][0]
    [eps] = await slices_where(api, namespace, "pub", lambda s: by_pod(s), "a slice")
    assert by_pod([eps])["p"]["conditions"] == {"ready": True, "serving": False, "terminating": False}


async def test_a_terminating_pod_leaves_the_endpoints_but_stays_in_the_slice_as_terminating(
    api: ApiClient, namespace: str
):
    await api.create(SERVICES, service("term"), namespace)
    await start_pod(api, namespace, "t", "term", "10.4.0.1", ready=True)
    await endpoints_where(api, namespace, "term", lambda e: e.get("subsets"), "endpoints")
    await api.delete(PODS, "t", namespace)  # bound and running: it stays Terminating (no kubelet here)
    await endpoints_where(api, namespace, "term", lambda e: not e.get("subsets"), "t out of the endpoints")
    [eps] = await slices_where(
        api, namespace, "term", lambda s: by_pod(s).get("t", {}).get("conditions", {}).get("terminating"), "term."
    )
    assert by_pod([eps])["t"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    await api.delete(PODS, "t", namespace, gracePeriodSeconds=0)


async def test_pods_serving_different_ports_get_their_own_subsets_and_slices(api: ApiClient, namespace: str):
    await api.create(SERVICES, service("mixed"), namespace)
    await start_pod(api, namespace, "named", "mixed", "10.5.0.1", ready=True)
    await start_pod(api, namespace, "unnamed", "mixed", "10.5.0.2", ready=True, port="other")
    slices = await slices_where(api, namespace, "mixed", lambda s: len(by_pod(s)) == 2, "both pods")
    ports = {e["targetRef"]["name"]: s["ports"] for s in slices for e in s["endpoints"]}
    assert ports == {"named": [{"name": "http", "port": 8080, "protocol": "TCP"}], "unnamed": []}
    ep = await endpoints_where(api, namespace, "mixed", lambda e: e.get("subsets"), "endpoints")
    assert [ips(s["addresses"]) for s in ep["subsets"]] == [["10.5.0.1"]], "no port, no endpoint"


async def test_a_deleted_service_takes_its_endpoints_along(api: ApiClient, namespace: str):
    await api.create(SERVICES, service("gone"), namespace)
    await start_pod(api, namespace, "g", "gone", "10.6.0.1", ready=True)
    await endpoints_where(api, namespace, "gone", lambda e: e.get("subsets"), "endpoints")
    await slices_where(api, namespace, "gone", lambda s: by_pod(s), "a slice")
    async with running(GarbageCollector(api)):  # the slices are owned by the service: the collector removes them
        await api.delete(SERVICES, "gone", namespace)
        await watch_until(api, ENDPOINTS, namespace, lambda eps: not eps, what="the endpoints to be deleted")
        await watch_until(api, ENDPOINT_SLICES, namespace, lambda items: not items, what="the slices to be collected")


async def test_deleted_endpoints_are_written_again(api: ApiClient, namespace: str):
    await api.create(SERVICES, service("again"), namespace)
    await start_pod(api, namespace, "x", "again", "10.7.0.1", ready=True)
    first = await endpoints_where(api, namespace, "again", lambda e: e.get("subsets"), "endpoints")
    await api.delete(ENDPOINTS, "again", namespace)
    second = await endpoints_where(
        api, namespace, "again", lambda e: e["metadata"]["uid"] != first["metadata"]["uid"], "new endpoints"
    )
    assert second["subsets"] == first["subsets"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"addressType": None}, "addressType: Required value"),
        ({"addressType": "IP"}, 'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'),
        ({"endpoints": [{"addresses": ["fe80::1"]}]}, 'endpoints[0].addresses[0]: Invalid value: "fe80::1": must be'),
        ({"endpoints": [{"addresses": ["127.0.0.1"]}]}, "may not be in the loopback range"),
        ({"endpoints": [{"addresses": []}]}, "endpoints[0].addresses: Required value: must contain at least 1"),
        ({"ports": [{"name": "a", "protocol": "HTTP"}]}, 'ports[0].protocol: Unsupported value: "HTTP"'),
        ({"ports": [{"name": "a"}, {"name": "a"}]}, 'ports[1].name: Duplicate value: "a"'),
    ],
)
async def test_endpoint_slice_validation(api: ApiClient, namespace: str, change: Obj, message: str):
    body = {"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": [], "ports": []}
    body.update(change)
    with pytest.raises(ApiException) as invalid:
        await api.create(ENDPOINT_SLICES, {k: v for k, v in body.items() if v is not None}, namespace)
    assert invalid.value.status == 422
    assert message in invalid.value.body["message"]


async def test_endpoint_slice_ports_default_and_address_type_is_immutable(api: ApiClient, namespace: str):
    body = {"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}
    created = await api.create(ENDPOINT_SLICES, {**body, "ports": [{"port": 80}]}, namespace)
    assert created["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    with pytest.raises(ApiException) as immutable:
        await api.patch(ENDPOINT_SLICES, "s", {"addressType": "IPv6", "endpoints": []}, namespace)
    assert 'addressType: Invalid value: "IPv6": field is immutable' in immutable.value.body["message"]
