"""The `kubernetes` service's Endpoints and EndpointSlice, written by the API server itself.

As kube-apiserver's endpoint reconciler (`pkg/controlplane/reconcilers`) does: the Endpoints `default/kubernetes`
name the advertise address and the API's port (`https`), labelled `endpointslice.kubernetes.io/skip-mirror`
so the mirroring controller leaves them alone; the EndpointSlice `default/kubernetes` says the same, labelled
only `kubernetes.io/service-name: kubernetes` (no managed-by label: no controller owns it). Both are put back
when deleted or changed, and removed when the server advertises no address (pods then have no way in).
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from shim.apiserver.errors import ApiError
from shim.apiserver.objects import DeleteOptions, Obj, ObjectStore, decode_as
from shim.apiserver.registry import ResourceType
from shim.machinery.resources import ENDPOINT_SLICES, ENDPOINTS

NAMESPACE = "default"
SERVICE = "kubernetes"
PORT_NAME = "https"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


async def reconcile_apiserver_endpoints(objects: ObjectStore, address: str | None, port: int) -> None:
    """Make the `kubernetes` Endpoints and EndpointSlice name `address`:`port`, or remove them when `address` is
    None. Reads first, so a round where everything is in place writes nothing."""
    endpoints, slices = objects.registry.get(ENDPOINTS), objects.registry.get(ENDPOINT_SLICES)
    if address is None:
        for rt in (endpoints, slices):
            await _delete(objects, rt)
        return
    await _reconcile(objects, endpoints, apiserver_endpoints(address, port), ("subsets",))
    await _reconcile(objects, slices, apiserver_slice(address, port), ("addressType", "endpoints", "ports"))


def apiserver_endpoints(address: str, port: int) -> Obj:
    """The Endpoints kube-apiserver writes for itself."""
    return {
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {SKIP_MIRROR_LABEL: "true"}},
        "subsets": [{"addresses": [{"ip": address}], "ports": [_port(port)]}],
    }


def apiserver_slice(address: str, port: int) -> Obj:
    """The EndpointSlice kube-apiserver writes for itself."""
    return {
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: SERVICE}},
        "addressType": "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [_port(port)],
    }


def _port(port: int) -> dict[str, Any]:
    return {"name": PORT_NAME, "port": port, "protocol": "TCP"}


async def _reconcile(objects: ObjectStore, rt: ResourceType, desired: Obj, fields: tuple[str, ...]) -> None:
    """Create `desired`, or bring the stored object's labels and `fields` back to it."""
    kv = await objects.store.get(rt.key(NAMESPACE, SERVICE))
    if kv is None:
        await _create(objects, rt, desired)
        return
    current = decode_as(rt, kv)
    if _matches(current, desired, fields):
        return
    if current.get("addressType", desired.get("addressType")) != desired.get("addressType"):
        await _delete(objects, rt)  # a slice's addressType is immutable
        await _create(objects, rt, desired)
        return

    def repair(old: Obj) -> Obj:
        old["metadata"]["labels"] = dict(desired["metadata"]["labels"])
        old.update({field: copy.deepcopy(desired[field]) for field in fields})
        return old

    await objects.update(rt, NAMESPACE, SERVICE, repair)


def _matches(current: Obj, desired: Obj, fields: tuple[str, ...]) -> bool:
    if (current["metadata"].get("labels") or {}) != desired["metadata"]["labels"]:
        return False
    return all(current.get(field) == desired[field] for field in fields)


async def _create(objects: ObjectStore, rt: ResourceType, desired: Obj) -> None:
    try:
        await objects.create(rt, NAMESPACE, copy.deepcopy(desired))  # create stamps what it is given
    except ApiError as exc:
        if exc.code != 409:  # another API server on the same store made it a moment ago
            raise


async def _delete(objects: ObjectStore, rt: ResourceType) -> None:
    if await objects.store.get(rt.key(NAMESPACE, SERVICE)) is None:
        return
    try:
        await objects.delete(rt, NAMESPACE, SERVICE, DeleteOptions())
    except ApiError as exc:
        if exc.code != 404:  # gone meanwhile
            raise
