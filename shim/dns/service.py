"""The `kube-dns` Service in `kube-system`, and the Endpoints and EndpointSlice that point it at this server.

The Service is kubeadm's CoreDNS addon's (name, labels, ports `dns` 53/UDP, `dns-tcp` 53/TCP, the tenth address
of the service CIDR) except that it has no selector and no `metrics` port (this server exports no Prometheus
metrics, and a port nothing answers on would only refuse scrapers): the DNS server is
not a pod, so, like kube-apiserver for `kubernetes`, the DNS component writes the endpoints itself: the
address it listens on and its real port as targetPort. A loopback listen address (the fake runtime) is
published nowhere, because pods could not use it and the Endpoints API refuses it.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from shim.client import ApiClient, ApiException
from shim.machinery.networks import SERVICE_CIDR
from shim.machinery.resources import ENDPOINT_SLICES, ENDPOINTS, SERVICES

log = logging.getLogger("shim.dns")

Obj = dict[str, Any]

NAMESPACE, NAME = "kube-system", "kube-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
MANAGED_BY = "kube-shim-dns"


@dataclass(frozen=True)
class Publication:
    """What the `kube-dns` objects say: the Service's cluster IP, and where the server really listens."""

    cluster_ip: str
    host: str
    port: int

    @property
    def published(self) -> bool:
        """Whether pods can use the listen address (so the endpoints name it)."""
        address = ipaddress.ip_address(self.host)
        return not (address.is_loopback or address.is_unspecified)


def dns_service_ip(service_cidr: ipaddress.IPv4Network = SERVICE_CIDR) -> str:
    """The tenth address of the service CIDR, where kube puts `kube-dns` (10.96.0.10 for 10.96.0.0/12)."""
    return str(service_cidr.network_address + 10)


async def ensure_kube_dns(client: ApiClient, publication: Publication, first: bool = False) -> None:
    """Create or repair the Service, Endpoints and EndpointSlice (one read each when all is in place). An
    unpublished address has no endpoints: the `first` round removes any a previous run left."""
    await _ensure(client, SERVICES, service(publication), _service_differs)
    for resource, wanted in ((ENDPOINTS, endpoints(publication)), (ENDPOINT_SLICES, endpoint_slice(publication))):
        if publication.published:
            await _ensure(client, resource, wanted, _content_differs)
        elif first:
            await _delete_ours(client, resource)


def service(publication: Publication) -> Obj:
    """The `kube-dns` Service as kubeadm's addon writes it, minus the selector."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": publication.cluster_ip,
            "clusterIPs": [publication.cluster_ip],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": publication.port},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": publication.port},
            ],
        },
    }


def endpoints(publication: Publication) -> Obj:
    """The Endpoints naming the server (kept from mirroring: its slice is written here too)."""
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {**LABELS, "endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": publication.host}], "ports": _ports(publication)}],
    }


def endpoint_slice(publication: Publication) -> Obj:
    """The EndpointSlice naming the server, labelled with its Service as the proxy looks slices up."""
    family = "IPv6" if ipaddress.ip_address(publication.host).version == 6 else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                **LABELS,
                "kubernetes.io/service-name": NAME,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": family,
        "endpoints": [
            {"addresses": [publication.host], "conditions": {"ready": True, "serving": True, "terminating": False}}
        ],
        "ports": _ports(publication),
    }


def _ports(publication: Publication) -> list[Obj]:
    return [
        {"name": "dns", "port": publication.port, "protocol": "UDP"},
        {"name": "dns-tcp", "port": publication.port, "protocol": "TCP"},
    ]


async def _ensure(client: ApiClient, resource: Any, wanted: Obj, differs: Any) -> None:
    try:
        current = await client.get(resource, NAME, NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise
        try:
            await client.create(resource, wanted, NAMESPACE)
            log.info("created %s %s/%s", resource.plural, NAMESPACE, NAME)
        except ApiException as created:
            if created.status != 409:  # 409: created meanwhile; anything else (e.g. the IP is taken) is news
                raise
        return
    if differs(current, wanted):
        if resource is SERVICES:  # only the ports can drift (a new listen port); the rest is the API server's
            await client.patch(resource, NAME, {"spec": {"ports": wanted["spec"]["ports"]}}, NAMESPACE)
        else:
            wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await client.replace(resource, wanted, NAMESPACE)
        log.info("repaired %s %s/%s", resource.plural, NAMESPACE, NAME)


def _service_differs(current: Obj, wanted: Obj) -> bool:
    ports = [(p.get("name"), p.get("port"), p.get("protocol"), p.get("targetPort")) for p in current["spec"]["ports"]]
    want = [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in wanted["spec"]["ports"]]
    return ports != want


def _content_differs(current: Obj, wanted: Obj) -> bool:
    keys = ("subsets",) if "subsets" in wanted else ("addressType", "endpoints", "ports")
    labels = current["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in wanted["metadata"]["labels"].items()):
        return True
    return any(_comparable(current.get(k)) != _comparable(wanted.get(k)) for k in keys)


def _comparable(value: Any) -> Any:
    """Endpoint data with the fields the API server defaults removed (nodeName, zone, appProtocol unset)."""
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v is not None and k not in ("targetRef", "nodeName")}
    return value


async def _delete_ours(client: ApiClient, resource: Any) -> None:
    """Remove endpoints a previous run published (on an address this run does not serve)."""
    try:
        await client.delete(resource, NAME, NAMESPACE)
        log.info("deleted %s %s/%s: the DNS server listens on loopback", resource.plural, NAMESPACE, NAME)
    except ApiException as exc:
        if exc.status != 404:
            raise
