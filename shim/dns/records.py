"""The cluster domain's records, computed from Services and EndpointSlices and held in memory.

After the Kubernetes DNS specification (schema 1.1.0) and CoreDNS's `kubernetes` plugin: a Service with a
cluster IP has an A/AAAA record per cluster IP, an SRV record per named port and a PTR per cluster IP; a
headless Service has an A/AAAA record per ready endpoint address (all of them with
`publishNotReadyAddresses`); every endpoint has `<hostname>.<service>.<ns>.svc.<zone>` (its `hostname`, or its
dashed address as CoreDNS names it) with a PTR back; an ExternalName Service is a CNAME. The records of one
Service are computed together and replace its previous ones (`Zone.replace`), so a query is a dict lookup.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dnslib import AAAA, CNAME, PTR, QTYPE, SRV, A

Obj = dict[str, Any]

TTL = 5  # seconds, CoreDNS kubernetes plugin's default: a Service's change reaches clients within it
SRV_PRIORITY, SRV_WEIGHT = 0, 100  # not prescribed by the spec; every target weighs the same, as in CoreDNS
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Record:
    """One resource record: `name` lower-case without the trailing dot, `rtype` a dnslib QTYPE value."""

    name: str
    rtype: int
    rdata: Any  # a dnslib RD (A, AAAA, CNAME, PTR, SRV)


class Zone:
    """Records contributed by owners (one Service each, keyed `namespace/name`), indexed by name.

    `exists(name)` also knows the names that hold no record but have records below them (DNS "empty
    non-terminals" such as `_http._tcp.web.default.svc.cluster.local`'s `_tcp...` or `default.svc...`): a query
    for them is NODATA, not NXDOMAIN. Reverse (`in-addr.arpa`) names are held too but make no such parents.
    """

    def __init__(self, domain: str) -> None:
        self.domain = normalise(domain)
        self.generation = 0  # bumped on every change, so answers cached by it go stale at once
        self._owned: dict[str, list[Record]] = {}
        self._by_name: dict[str, dict[str, list[Record]]] = {}
        self._names: Counter[str] = Counter()  # per name in the domain: how many owned records are at or below it

    def replace(self, owner: str, records: list[Record]) -> None:
        """Make `records` all that `owner` contributes (an empty list removes it)."""
        old = self._owned.pop(owner, [])
        if old == records:
            if records:
                self._owned[owner] = records
            return
        for record in old:
            self._forget(owner, record)
        if records:
            self._owned[owner] = records
            for record in records:
                self._by_name.setdefault(record.name, {}).setdefault(owner, []).append(record)
                for name in self._ancestors(record.name):
                    self._names[name] += 1
        self.generation += 1

    def records(self, name: str) -> list[Record]:
        """Every record named `name` (normalised), of any type."""
        owners = self._by_name.get(name)
        if not owners:
            return []
        return [record for records in owners.values() for record in records]

    def exists(self, name: str) -> bool:
        """Whether `name` holds a record or has one below it."""
        return self._names.get(name, 0) > 0 or name in self._by_name

    def _forget(self, owner: str, record: Record) -> None:
        owners = self._by_name.get(record.name)
        if owners is not None and owner in owners:
            del owners[owner]
            if not owners:
                del self._by_name[record.name]
        for name in self._ancestors(record.name):
            self._names[name] -= 1
            if self._names[name] <= 0:
                del self._names[name]

    def _ancestors(self, name: str) -> Iterable[str]:
        """`name` and its parents down to the domain, when `name` is in the domain."""
        suffix = "." + self.domain
        while name.endswith(suffix):
            yield name
            name = name.split(".", 1)[1]


def service_records(service: Obj, slices: Iterable[Obj], domain: str) -> list[Record]:
    """Every record a Service (and its EndpointSlices) puts in the cluster domain `domain` (normalised)."""
    meta, spec = service["metadata"], service.get("spec") or {}
    base = f"{meta['name']}.{meta['namespace']}.svc.{domain}".lower()
    if spec.get("type") == "ExternalName":
        target = normalise(spec.get("externalName") or "")
        return [Record(base, QTYPE.CNAME, CNAME(target + "."))] if target else []
    records: list[Record] = []
    cluster_ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    for ip in cluster_ips:
        records.extend(_address_records(base, ip))
    if cluster_ips:
        for port in spec.get("ports") or ():
            if port.get("name"):
                records.append(_srv(port, base))
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType") not in ("IPv4", "IPv6"):
            continue  # FQDN slices name hosts, not addresses
        named_ports = [p for p in endpoint_slice.get("ports") or () if p.get("name") and p.get("port")]
        for endpoint in endpoint_slice.get("endpoints") or ():
            if not publish_not_ready and (endpoint.get("conditions") or {}).get("ready") is False:
                continue  # an unset `ready` counts as ready (EndpointConditions' rule)
            for ip in endpoint.get("addresses") or ():
                host = f"{endpoint_host(endpoint, ip)}.{base}"
                if not cluster_ips:
                    records.extend(_address_records(base, ip, ptr=False))
                    records.extend(_srv(port, host, owner=base) for port in named_ports)
                records.extend(_address_records(host, ip))
    return records


def endpoint_host(endpoint: Obj, ip: str) -> str:
    """An endpoint's name under its Service: its `hostname`, else its address with dashes (CoreDNS's choice)."""
    hostname = endpoint.get("hostname")
    if hostname:
        return str(hostname).lower()
    return ip.replace(".", "-").replace(":", "-")


def slice_service(endpoint_slice: Obj) -> str | None:
    """The `namespace/name` of the Service an EndpointSlice belongs to (its service-name label)."""
    meta = endpoint_slice["metadata"]
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta['namespace']}/{name}" if name else None


def reverse_name(ip: str) -> str | None:
    """`d.c.b.a.in-addr.arpa` (or the ip6.arpa nibbles) of an address; None for what is not one."""
    try:
        return ipaddress.ip_address(ip).reverse_pointer
    except ValueError:
        return None


def normalise(name: str) -> str:
    """A name as the zone keys it: lower-case (DNS compares case-insensitively), no trailing dot."""
    return name.lower().rstrip(".")


def _address_records(name: str, ip: str, ptr: bool = True) -> list[Record]:
    """A (or AAAA) `name` -> ip, and with `ptr` the PTR ip -> `name`; nothing for a malformed address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return []
    if address.version == 4:
        records = [Record(name, QTYPE.A, A(str(address)))]
    else:
        records = [Record(name, QTYPE.AAAA, AAAA(str(address)))]
    if ptr:
        records.append(Record(address.reverse_pointer, QTYPE.PTR, PTR(name + ".")))
    return records


def _srv(port: Obj, target: str, owner: str | None = None) -> Record:
    """`_<port>._<proto>.<owner>` SRV -> `target`:port (owner: the Service's name, default the target)."""
    protocol = str(port.get("protocol") or "TCP").lower()
    name = f"_{port['name']}._{protocol}.{owner or target}".lower()
    return Record(name, QTYPE.SRV, SRV(SRV_PRIORITY, SRV_WEIGHT, int(port["port"]), target + "."))
