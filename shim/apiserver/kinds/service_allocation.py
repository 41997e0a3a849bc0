"""Cluster IPs and node ports for Services: what kube's service REST storage allocates on create and
update (`pkg/registry/core/service/storage/alloc.go`), with kube's error wording.

What is in use is read from the stored Services themselves, so a deleted Service (or one that changes
type) releases its values with no bookkeeping. The caller serialises Service writes (the strategy's
write lock), so two concurrent creates never get the same value.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from shim.apiserver.kinds.causes import Cause, go_string_slice, invalid
from shim.machinery.networks import SERVICE_CIDR

Obj = dict[str, Any]

NODE_PORT_RANGE = (30000, 32767)
_RANDOM_TRIES = 64


class AllocationError(Exception):
    """The request's causes (422 Invalid) or, with no causes, a full range (500)."""

    def __init__(self, causes: list[Cause], message: str = "") -> None:
        super().__init__(message or "; ".join(c["message"] for c in causes))
        self.causes = causes


class ServiceAllocator:
    """Hands out cluster IPs from `cidr` and node ports from `port_range`."""

    def __init__(self, cidr: ipaddress.IPv4Network = SERVICE_CIDR, port_range: tuple[int, int] = NODE_PORT_RANGE):
        self.cidr = cidr
        self.port_range = port_range

    def allocate(self, service: Obj, old: Obj | None, others: Iterable[Obj]) -> None:
        """Fill the cluster IP and node ports `service` needs, in place; `old` is the stored version on an
        update and `others` every other stored Service. Raises AllocationError."""
        spec = service.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        used_ips, used_ports = _in_use(others)
        causes = self._allocate_cluster_ip(spec, old_spec, used_ips)
        causes += self._allocate_node_ports(spec, old_spec, used_ports)
        if causes:
            raise AllocationError(causes)

    def _allocate_cluster_ip(self, spec: Obj, old_spec: Obj, used: set[str]) -> list[Cause]:
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return []
        wanted = spec.get("clusterIP") or ""
        if wanted and wanted == old_spec.get("clusterIP"):
            return []  # kept across an update
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError:
                return []  # validation words the malformed address
            ips = go_string_slice(spec.get("clusterIPs") or [wanted])
            if address not in self.cidr or address in (self.cidr.network_address, self.cidr.broadcast_address):
                return [
                    invalid(
                        "spec.clusterIPs",
                        ips,
                        f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the valid range. "
                        f"The range of valid IPs is {self.cidr}",
                    )
                ]
            if wanted in used:
                message = f"failed to allocate IP {wanted}: provided IP is already allocated"
                return [invalid("spec.clusterIPs", ips, message)]
        else:
            wanted = self._free_ip(used)
        spec["clusterIP"] = wanted
        spec["clusterIPs"] = [wanted]
        return []

    def _free_ip(self, used: set[str]) -> str:
        first, size = int(self.cidr.network_address), self.cidr.num_addresses
        for _ in range(_RANDOM_TRIES):
            # kube keeps the low sixteenth of the range for addresses users ask for by name
            candidate = str(ipaddress.ip_address(first + random.randint(max(size // 16, 1), size - 2)))
            if candidate not in used:
                return candidate
        for offset in range(1, size - 1):
            candidate = str(ipaddress.ip_address(first + offset))
            if candidate not in used:
                return candidate
        raise AllocationError([], "failed to allocate a serviceIP: range is full")

    def _allocate_node_ports(self, spec: Obj, old_spec: Obj, used: set[int]) -> list[Cause]:
        kind = spec.get("type") or "ClusterIP"
        ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
        kept = {p.get("nodePort") for p in old_spec.get("ports") or () if isinstance(p, dict) and p.get("nodePort")}
        causes: list[Cause] = []
        mine: dict[int, int] = {}  # a port number this service already claimed -> its node port (TCP and UDP share)
        for i, port in enumerate(ports):
            node_port = port.get("nodePort")
            if not node_port:
                continue
            if not isinstance(node_port, int) or not self._in_range(node_port):
                continue  # validation words it
            if node_port not in kept and node_port in used and node_port not in mine.values():
                causes.append(invalid(f"spec.ports[{i}].nodePort", node_port, "provided port is already allocated"))
            mine[port.get("port", 0)] = node_port
        if not needs_node_port(spec) or causes:
            return causes
        taken = used | set(mine.values())
        for port in ports:
            if port.get("nodePort"):
                continue
            shared = mine.get(port.get("port", 0))
            node_port = shared if shared is not None else self._free_port(taken)
            port["nodePort"] = node_port
            mine[port.get("port", 0)] = node_port
            taken.add(node_port)
        if kind == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            health = spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort")
            if not health:
                spec["healthCheckNodePort"] = health = self._free_port(taken)
            taken.add(health)
        return causes

    def _in_range(self, port: int) -> bool:
        return self.port_range[0] <= port <= self.port_range[1]

    def _free_port(self, used: set[int]) -> int:
        low, high = self.port_range
        for _ in range(_RANDOM_TRIES):
            candidate = random.randint(low, high)
            if candidate not in used:
                return candidate
        for candidate in range(low, high + 1):
            if candidate not in used:
                return candidate
        raise AllocationError([], "failed to allocate a nodePort: range is full")


def needs_node_port(spec: Obj) -> bool:
    """NodePort services, and LoadBalancers unless they opt out, get a node port per port."""
    kind = spec.get("type") or "ClusterIP"
    return kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)


def _in_use(services: Iterable[Obj]) -> tuple[set[str], set[int]]:
    ips: set[str] = set()
    ports: set[int] = set()
    for service in services:
        spec = service.get("spec") or {}
        ips.update(ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None")
        ports.update(p["nodePort"] for p in spec.get("ports") or () if isinstance(p, dict) and p.get("nodePort"))
        if spec.get("healthCheckNodePort"):
            ports.add(spec["healthCheckNodePort"])
    return ips, ports
