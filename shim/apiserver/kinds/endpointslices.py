"""discovery.k8s.io/v1 EndpointSlice, after `pkg/registry/discovery/endpointslice/strategy.go` and
`pkg/apis/discovery/validation/validation.go`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from shim.apiserver.errors import cause
from shim.apiserver.kinds.addresses import PROTOCOLS, non_special_ip
from shim.apiserver.kinds.causes import Cause, duplicate, invalid, required, unsupported
from shim.apiserver.kinds.meta import FIELD_IMMUTABLE, is_dns1123_label, is_dns1123_subdomain, is_qualified_name
from shim.apiserver.printers import Cells, age, column_definitions, object_name
from shim.apiserver.printers import Obj as Printed
from shim.apiserver.registry import Strategy

# -- Table printer (kube's pkg/printers/internalversion/printers.go) ------------------------------


def endpointslice_cells(eps: Printed, now_us: int) -> Cells:
    ports = [
        str(p["port"]) if p.get("port") is not None else (p["name"] if p.get("name") is not None else "*")
        for p in eps.get("ports") or ()
    ]
    addresses = [a for e in eps.get("endpoints") or () for a in e.get("addresses") or ()]
    return [
        object_name(eps),
        eps.get("addressType", ""),
        _first_three(ports),
        _first_three(addresses),
        age(eps, now_us),
    ]


def _first_three(items: list[str]) -> str:
    if len(items) > 3:
        return f"{','.join(items[:3])} + {len(items) - 3} more..."
    return ",".join(items) or "<unset>"


Obj = dict[str, Any]

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 100


class EndpointSliceStrategy(Strategy):
    """EndpointSlices: ports default to TCP and an empty name; addresses must fit the slice's addressType."""

    table_columns = column_definitions("discovery.k8s.io/endpointslices")
    printer = staticmethod(endpointslice_cells)

    def default(self, obj: Obj) -> None:
        for port in obj.get("ports") or ():
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> list[Cause]:
        address_type = obj.get("addressType") or ""
        causes: list[Cause] = []
        if not address_type:
            causes.append(required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            causes.append(unsupported("addressType", address_type, ADDRESS_TYPES))
        causes.extend(_validate_endpoints(obj.get("endpoints") or [], address_type))
        causes.extend(_validate_ports(obj.get("ports") or []))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if new.get("addressType") != old.get("addressType"):
            causes.append(invalid("addressType", new.get("addressType") or "", FIELD_IMMUTABLE))
        return causes


def _too_many(path: str, count: int, limit: int) -> Cause:
    return cause("FieldValueTooMany", path, f"Too many: {count}: must have at most {limit} items")


def _validate_endpoints(endpoints: list[Obj], address_type: str) -> list[Cause]:
    if len(endpoints) > MAX_ENDPOINTS:
        return [_too_many("endpoints", len(endpoints), MAX_ENDPOINTS)]
    causes: list[Cause] = []
    for i, endpoint in enumerate(endpoints):
        path = f"endpoints[{i}]"
        addresses = endpoint.get("addresses") or []
        if not addresses:
            causes.append(required(path + ".addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            causes.append(_too_many(path + ".addresses", len(addresses), MAX_ADDRESSES))
        for j, address in enumerate(addresses):
            causes.extend(_validate_address(address, address_type, f"{path}.addresses[{j}]"))
        node_name = endpoint.get("nodeName")
        if node_name is not None:
            causes.extend(invalid(path + ".nodeName", node_name, m) for m in is_dns1123_subdomain(node_name))
        hostname = endpoint.get("hostname")
        if hostname is not None:
            causes.extend(invalid(path + ".hostname", hostname, m) for m in is_dns1123_label(hostname))
    return causes


def _validate_address(address: str, address_type: str, path: str) -> list[Cause]:
    """Known address types only; an unknown type was already reported on addressType."""
    if address_type in ("IPv4", "IPv6"):
        version = 4 if address_type == "IPv4" else 6
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            ip = None
        if ip is None or ip.version != version:
            return [invalid(path, address, f"must be a valid {address_type} address")]
        return non_special_ip(address, path)
    if address_type == "FQDN":
        name = address.removesuffix(".")
        problems = is_dns1123_subdomain(name)
        if not problems and "." not in name:
            problems = ["should be a domain with at least two segments separated by dots"]
        return [invalid(path, name, m) for m in problems]
    return []


def _validate_ports(ports: list[Obj]) -> list[Cause]:
    if len(ports) > MAX_PORTS:
        return [_too_many("ports", len(ports), MAX_PORTS)]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            causes.extend(invalid(path + ".name", name, m) for m in is_dns1123_label(name))
        if name in names:
            causes.append(duplicate(path + ".name", name))
        names.add(name)
        protocol = port.get("protocol")
        if not protocol:
            causes.append(required(path + ".protocol"))
        elif protocol not in PROTOCOLS:
            causes.append(unsupported(path + ".protocol", protocol, PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if app_protocol is not None:
            causes.extend(invalid(path + ".appProtocol", app_protocol, m) for m in is_qualified_name(app_protocol))
    return causes
