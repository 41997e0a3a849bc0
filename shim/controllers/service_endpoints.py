"""What a Service's Endpoints and EndpointSlices should hold, from its selected pods. Pure functions.

After kube's `pkg/controller/endpoint` (subsets, repacked as `RepackSubsets` does) and
`staging/src/k8s.io/endpointslice` (one slice per address type and port set, at most 100 endpoints each,
a placeholder slice when there are none).
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from shim.controllers.podutil import is_pod_ready

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_ENDPOINTS_PER_SLICE = 100
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet, as generateName uses
_MAX_GENERATED_PREFIX = 58


# -- pods ------------------------------------------------------------------------------------------------------


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """endpointsliceutil.ShouldPodBeInEndpoints: it has an IP, is not terminal for its restart policy."""
    status = pod.get("status") or {}
    if not status.get("podIP") and not status.get("podIPs"):
        return False
    if not include_terminating and pod["metadata"].get("deletionTimestamp"):
        return False
    phase, restart = status.get("phase"), (pod.get("spec") or {}).get("restartPolicy", "Always")
    if restart == "Never":
        return phase not in ("Failed", "Succeeded")
    if restart == "OnFailure":
        return phase != "Succeeded"
    return True


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """podutil.FindPort: a numeric targetPort as is, a named one from the pod's (or sidecars') ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol", "TCP")
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or ()), *sidecars]:
        for port in container.get("ports") or ():
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return port.get("containerPort")
    return None


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [entry["ip"] for entry in status.get("podIPs") or () if entry.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def endpoint_relevant(pod: Obj | None) -> object:
    """The parts of a pod its endpoints depend on: a pod update that changes none of them changes nothing."""
    if pod is None:
        return None
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    return (
        meta.get("labels"),
        meta.get("deletionTimestamp"),
        pod_ips(pod),
        is_pod_ready(pod),
        status.get("phase"),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
        [c.get("ports") for c in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ()))],
    )


# -- services --------------------------------------------------------------------------------------------------


def selects(service: Obj, pod: Obj) -> bool:
    """The service's (map) selector matches the pod's labels; a service without one selects nothing."""
    selector = (service.get("spec") or {}).get("selector")
    if selector is None:
        return False
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_headless(service: Obj) -> bool:
    cluster_ip = (service.get("spec") or {}).get("clusterIP") or ""
    return cluster_ip in ("", "None")


def endpoints_labels(service: Obj) -> dict[str, str]:
    """The Endpoints carry the service's labels, plus the headless marker when it has no cluster IP."""
    labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items() if k != HEADLESS_LABEL}
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def slice_labels(service: Obj) -> dict[str, str]:
    """The service's labels with the reserved ones (service name, manager, headless) set by the controller."""
    reserved = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
    labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items() if k not in reserved}
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


# -- core/v1 Endpoints -------------------------------------------------------------------------------------


def endpoints_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The subsets of the service's Endpoints: one per distinct set of (address, ready) sharing ports."""
    spec = service.get("spec") or {}
    tolerate_unready = bool(spec.get("publishNotReadyAddresses"))
    service_ports = spec.get("ports") or []
    # port -> {(ip, pod uid): (address, ready)}; None stands for "no ports" (a headless service may have none)
    by_port: dict[tuple[Any, ...] | None, dict[tuple[str, str], tuple[Obj, bool]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, tolerate_unready):
            continue
        address = _endpoint_address(service, pod)
        if address is None:
            continue
        ready = tolerate_unready or is_pod_ready(pod)
        ports: list[tuple[Any, ...] | None] = []
        if not service_ports and spec.get("clusterIP") == "None":
            ports.append(None)
        for port in service_ports:
            number = find_port(pod, port)
            if number is not None:
                ports.append((port.get("name") or "", number, port.get("protocol", "TCP"), port.get("appProtocol")))
        key = (address["ip"], address["targetRef"]["uid"])
        for port_key in ports:
            addresses = by_port.setdefault(port_key, {})
            seen = addresses.get(key)
            addresses[key] = (address, ready and (seen is None or seen[1]))  # not ready wins
    ports_by_addresses: dict[frozenset[tuple[tuple[str, str], bool]], list[tuple[Any, ...] | None]] = {}
    address_of: dict[tuple[str, str], Obj] = {}
    for port_key, addresses in by_port.items():
        signature = frozenset((key, ready) for key, (_, ready) in addresses.items())
        ports_by_addresses.setdefault(signature, []).append(port_key)
        address_of.update((key, address) for key, (address, _) in addresses.items())
    subsets = [_subset(signature, ports, address_of) for signature, ports in ports_by_addresses.items()]
    return sorted(subsets, key=_subset_order)


def _subset(
    signature: frozenset[tuple[tuple[str, str], bool]],
    ports: list[tuple[Any, ...] | None],
    address_of: dict[tuple[str, str], Obj],
) -> Obj:
    subset: Obj = {}
    ready = sorted(key for key, is_ready in signature if is_ready)
    not_ready = sorted(key for key, is_ready in signature if not is_ready)
    if ready:
        subset["addresses"] = [address_of[key] for key in ready]
    if not_ready:
        subset["notReadyAddresses"] = [address_of[key] for key in not_ready]
    port_objects = [_endpoint_port(p) for p in sorted(p for p in ports if p is not None)]
    if port_objects:
        subset["ports"] = port_objects
    return subset


def _subset_order(subset: Obj) -> tuple[Any, ...]:
    first = (subset.get("addresses") or subset.get("notReadyAddresses") or [{}])[0]
    return first.get("ip", ""), [(p.get("name", ""), p["port"]) for p in subset.get("ports") or ()]


def _endpoint_port(port_key: tuple[Any, ...]) -> Obj:
    name, number, protocol, app_protocol = port_key
    port: Obj = {"port": number, "protocol": protocol}
    if name:
        port["name"] = name
    if app_protocol:
        port["appProtocol"] = app_protocol
    return port


def _endpoint_address(service: Obj, pod: Obj) -> Obj | None:
    """podToEndpointAddressForService: the pod's IP of the service's (first) family."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        want_v6 = families[0] == "IPv6"
    elif not is_headless(service):
        want_v6 = _is_v6(spec["clusterIP"])
    else:
        want_v6 = _is_v6((pod.get("status") or {}).get("podIP") or "")
    ip = next((ip for ip in pod_ips(pod) if _is_v6(ip) == want_v6), None)
    if ip is None:
        return None
    address: Obj = {"ip": ip}
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        address["nodeName"] = node_name
    if _should_set_hostname(service, pod):
        address["hostname"] = pod["spec"]["hostname"]
    address["targetRef"] = _target_ref(pod)
    return address


# -- discovery.k8s.io/v1 EndpointSlices --------------------------------------------------------------------


def endpoint_slices(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The service's slices, with stable names (the same inputs always give the same slices)."""
    groups: dict[tuple[str, str], tuple[list[Obj], list[Obj]]] = {}
    address_types = address_types_for(service)
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = _slice_ports(service, pod)
        ports_key = repr(ports)
        for address_type in address_types:
            endpoint = _pod_endpoint(service, pod, address_type)
            if endpoint["addresses"]:
                groups.setdefault((address_type, ports_key), (ports, []))[1].append(endpoint)
    slices: list[Obj] = []
    for address_type in address_types:
        chunks = []
        for (group_type, _), (ports, endpoints) in sorted(groups.items()):
            if group_type != address_type:
                continue
            endpoints.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["uid"]))
            for start in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
                chunks.append((ports, endpoints[start : start + MAX_ENDPOINTS_PER_SLICE]))
        for index, (ports, endpoints) in enumerate(chunks or [([], [])]):  # empty: one placeholder slice
            slices.append(_slice(service, address_type, index, ports, endpoints))
    return slices


def address_types_for(service: Obj) -> list[str]:
    """getAddressTypesForService: from ipFamilies, else the cluster IP's family, else both."""
    spec = service.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or () if f in ("IPv4", "IPv6")]
    if families:
        return sorted(set(families))
    if not is_headless(service):
        return ["IPv6" if _is_v6(spec["clusterIP"]) else "IPv4"]
    return ["IPv4", "IPv6"]


def slice_name(service: Obj, address_type: str, index: int) -> str:
    """`<service>-xxxxx` like generateName would make, but derived from the service's uid (so that two
    controller instances, or one after a restart, agree on it)."""
    prefix = f"{service['metadata']['name']}-"[:_MAX_GENERATED_PREFIX]
    digest = hashlib.sha256(f"{service['metadata']['uid']}/{address_type}/{index}".encode()).digest()
    return prefix + "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:5])


def _slice(service: Obj, address_type: str, index: int, ports: list[Obj], endpoints: list[Obj]) -> Obj:
    meta = service["metadata"]
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(service, address_type, index),
            "namespace": meta["namespace"],
            "labels": slice_labels(service),
            "ownerReferences": [owner],
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports,
    }


def _slice_ports(service: Obj, pod: Obj) -> list[Obj]:
    """getEndpointPorts: the service's ports this pod serves (a headless service may have none)."""
    ports = []
    for port in (service.get("spec") or {}).get("ports") or ():
        number = find_port(pod, port)
        if number is None:
            continue
        entry: Obj = {"name": port.get("name") or "", "port": number, "protocol": port.get("protocol", "TCP")}
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        ports.append(entry)
    return ports


def _pod_endpoint(service: Obj, pod: Obj, address_type: str) -> Obj:
    """podToEndpoint: serving is readiness, ready also needs not terminating (unless publishing unready)."""
    serving = is_pod_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    want_v6 = address_type == "IPv6"
    endpoint: Obj = {
        "addresses": [ip for ip in pod_ips(pod) if _is_v6(ip) == want_v6],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": _target_ref(pod),
    }
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
    if _should_set_hostname(service, pod):
        endpoint["hostname"] = pod["spec"]["hostname"]
    return endpoint


# -- helpers ---------------------------------------------------------------------------------------------------


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


def _should_set_hostname(service: Obj, pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        bool(spec.get("hostname"))
        and spec.get("subdomain") == service["metadata"]["name"]
        and pod["metadata"]["namespace"] == service["metadata"]["namespace"]
    )


def _is_v6(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 6
    except ValueError:
        return False
