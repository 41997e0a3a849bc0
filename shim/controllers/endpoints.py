"""Endpoints and EndpointSlice controller: each Service's Endpoints and EndpointSlices follow its pods.

Follows kube-controller-manager's `endpoint` and `endpointslice` controllers (one loop here, as both read the
same services and pods): a service with a selector gets an Endpoints object of its name and slices labelled
`kubernetes.io/service-name` and managed by `endpointslice-controller.k8s.io`, owned by the service (so the
garbage collector removes them with it). Services without a selector are left to whoever writes their
endpoints (`default/kubernetes`: the API server itself, `shim/apiserver/apiserver_endpoints.py`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from shim.client import ApiClient, ApiException, SharedInformerFactory, object_key
from shim.controllers.apierrors import missing_ok
from shim.controllers.reconciler import Reconciler
from shim.controllers.service_endpoints import (
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    endpoint_relevant,
    endpoint_slices,
    endpoints_labels,
    endpoints_subsets,
    selects,
)
from shim.machinery.resources import ENDPOINT_SLICES, ENDPOINTS, PODS, SERVICES

Obj = dict[str, Any]

SLICES_BY_SERVICE = "endpoint-controller/service"

log = logging.getLogger("shim.controllers.endpoints")


class EndpointsController(Reconciler):
    """Keeps every service's Endpoints and EndpointSlices current; one sync per service key."""

    workers = 5  # kube's --concurrent-endpoint-syncs

    def __init__(self, client: ApiClient, informers: SharedInformerFactory | None = None) -> None:
        super().__init__(client, "endpoint-controller", informers)
        self.services = self.watch(SERVICES, self._on_service)
        self.pods = self.watch(PODS, self._on_pod)
        self.endpoints = self.watch(ENDPOINTS, self._on_endpoints)
        self.slices = self.watch(ENDPOINT_SLICES, self._on_slice)
        self.slices.add_indexer(SLICES_BY_SERVICE, _slice_service_key)

    async def sync(self, key: str) -> None:
        """Write the Endpoints and EndpointSlices of the service `namespace/name` (or delete its Endpoints)."""
        namespace, name = key.split("/", 1)
        service = self.services.get(key)
        if service is None:
            # the slices are owned by the service: the garbage collector removes them
            with missing_ok():
                await self.client.delete(ENDPOINTS, name, namespace)
            return
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return
        if spec.get("selector") is None:
            return  # its endpoints are written by someone else
        pods = [pod for pod in self.pods.in_namespace(namespace) if selects(service, pod)]
        await self._write_endpoints(service, endpoints_subsets(service, pods), endpoints_labels(service))
        await self._write_slices(service, endpoint_slices(service, pods), CONTROLLER_NAME)

    # -- writing ---------------------------------------------------------------------------------------------

    async def _write_endpoints(self, service: Obj, subsets: list[Obj], labels: dict[str, str]) -> None:
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        current = self.endpoints.get(f"{namespace}/{name}")
        if current is not None:
            same_subsets = (current.get("subsets") or []) == subsets
            if same_subsets and (current["metadata"].get("labels") or {}) == labels:
                return
            body = copy.deepcopy(current)
        else:
            body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
        body["metadata"]["labels"] = labels
        body["subsets"] = subsets
        try:
            if current is None:
                await self.client.create(ENDPOINTS, body, namespace)
            else:
                await self.client.replace(ENDPOINTS, body, namespace)
        except ApiException as exc:
            if current is None and exc.status == 403:
                return  # the namespace is terminating: nothing more will be written in it
            if exc.status != 409:
                verb = "create" if current is None else "update"
                reason = "FailedToCreateEndpoint" if current is None else "FailedToUpdateEndpoint"
                self.events.emit(body, "Warning", reason, f"Failed to {verb} endpoint {namespace}/{name}: {exc}")
            raise

    async def _write_slices(self, service: Obj, desired: list[Obj], manager: str | None) -> None:
        """Create, update or delete the service's slices that `manager` labels, so that they equal `desired`."""
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        existing = {
            s["metadata"]["name"]: s
            for s in self.slices.by_index(SLICES_BY_SERVICE, f"{namespace}/{name}")
            if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == manager
        }
        for wanted in desired:
            current = existing.pop(wanted["metadata"]["name"], None)
            if current is not None and current.get("addressType") != wanted["addressType"]:
                # addressType is immutable: replace the slice
                with missing_ok():
                    await self.client.delete(ENDPOINT_SLICES, current["metadata"]["name"], namespace)
                current = None
            if current is None:
                await self._create_slice(wanted, namespace)
            elif _slice_differs(current, wanted):
                body = copy.deepcopy(current)
                body["metadata"].update(wanted["metadata"])
                body.update({k: wanted[k] for k in ("addressType", "endpoints", "ports")})
                await self.client.replace(ENDPOINT_SLICES, body, namespace)
        for stale in existing.values():
            with missing_ok():
                await self.client.delete(ENDPOINT_SLICES, stale["metadata"]["name"], namespace)

    async def _create_slice(self, wanted: Obj, namespace: str) -> None:
        try:
            await self.client.create(ENDPOINT_SLICES, wanted, namespace)
        except ApiException as exc:
            if exc.status == 403:
                return  # the namespace is terminating
            raise  # AlreadyExists: the cache is behind; the retry compares with the slice written

    # -- informer events -------------------------------------------------------------------------------------

    async def _on_service(self, event: str, service: Obj, old: Obj | None) -> None:
        self.queue.add(object_key(service))

    async def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        new = None if event == "DELETED" else pod
        if endpoint_relevant(old) == endpoint_relevant(new):
            return
        for service in self.services.in_namespace(pod["metadata"]["namespace"]):
            if (old is not None and selects(service, old)) or (new is not None and selects(service, new)):
                self.queue.add(object_key(service))

    async def _on_endpoints(self, event: str, endpoints: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            self.queue.add(object_key(endpoints))  # recreated if its service is still there

    async def _on_slice(self, event: str, endpoint_slice: Obj, old: Obj | None) -> None:
        for key in _slice_service_key(endpoint_slice):
            self.queue.add(key)


def _slice_service_key(endpoint_slice: Obj) -> list[str]:
    """The `namespace/name` of the service a slice belongs to (by its service-name label), if any."""
    meta = endpoint_slice["metadata"]
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta['namespace']}/{service}"] if service else []


def _slice_differs(current: Obj, wanted: Obj) -> bool:
    meta, wanted_meta = current["metadata"], wanted["metadata"]
    return (
        (meta.get("labels") or {}) != wanted_meta["labels"]
        or (meta.get("ownerReferences") or []) != wanted_meta.get("ownerReferences", [])
        or any((current.get(k) or []) != wanted[k] for k in ("endpoints", "ports"))
    )
