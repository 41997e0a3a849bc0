"""Services + EndpointSlices + this node -> one nftables ruleset (kube-proxy's nftables mode, reduced).

The table `ip kube-shim-<cluster id>-<node hash>` is written whole on every sync (`add table; delete table;
table {...}` in one `nft -f` transaction), so what a deleted Service left behind vanishes with the next sync.
Chains:
- `services` (from nat prerouting and nat output): the `service-ips` map sends address . protocol . port of
  every ClusterIP, external IP and load-balancer IP to its service port's chain; `service-nodeports` does the
  same for protocol . port on this node's addresses, and on 127.0.0.1 for the host's own connections.
- `svc-*` (a ClusterIP): masquerade unless the client is a pod, then the endpoints (all of them, or this
  node's with internalTrafficPolicy Local).
- `ext-*` (a NodePort, external IP or load-balancer IP): masquerade, then all endpoints; with
  externalTrafficPolicy Local, pods' and the host's own connections still go to all endpoints, the rest only
  to this node's (and keep their source address).
- `all-*` / `local-*`: session affinity lookups, then `numgen random` over the endpoints (`local-*` drops when
  this node has none, as kube does).
- `ep-*`: hairpin masquerade (a pod reaching itself through its service), affinity update, DNAT.
- nat postrouting at srcnat-10: masquerade what was marked, then a null SNAT binding between pod addresses, so
  that netavark's masquerade (a later nat chain of the same hook) leaves pod-to-pod traffic alone.
- filter input/forward/output, after the nat hooks: a new connection to a service port without endpoints (in
  the `no-endpoint-*` maps, never DNATed) is refused at once (TCP reset, else ICMP port-unreachable), and on
  input one still addressed to the service or load-balancer range (an unassigned address) too (TCP reset,
  else ICMP host-unreachable).
- `localnet-guard`: anything arriving from outside `lo` with a 127/8 source or destination is dropped (the pod
  bridges need route_localnet for localhost NodePorts; pods must not reach host-local services through it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MASQUERADE_MARK = "0x4000"  # kube-proxy's bit: a packet marked so is masqueraded on its way out
DEFAULT_AFFINITY_SECONDS = 10800  # kube's default sessionAffinityConfig.clientIP.timeoutSeconds
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
TABLE_PREFIX = "kube-shim-"  # + the cluster id and a hash of the node name: one table per node on a host
OWNER_CHAIN_PREFIX = "owner-"  # + the proxy process that keeps the table (see kernel.remove_orphaned_tables)
_NAME_PART = re.compile(r"[^a-z0-9.-]")


@dataclass(frozen=True)
class Ranges:
    """The address ranges the rules know: where ClusterIPs, load-balancer IPs and pod IPs come from."""

    service_cidr: ipaddress.IPv4Network
    load_balancer_range: ipaddress.IPv4Network
    pod_cidr: ipaddress.IPv4Network


@dataclass(frozen=True)
class Endpoint:
    """One address:port of a service port, with its EndpointSlice conditions."""

    ip: str
    port: int
    node_name: str | None
    ready: bool
    serving: bool
    terminating: bool


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with everything its rules need."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # nft's spelling: tcp, udp, sctp
    port: int
    cluster_ip: str
    node_port: int | None
    external_ips: tuple[str, ...]  # spec.externalIPs and status.loadBalancer.ingress IPs
    affinity_seconds: int | None  # sessionAffinity ClientIP's timeout, None without affinity
    internal_local: bool
    external_local: bool
    endpoints: tuple[Endpoint, ...]

    @property
    def key(self) -> str:
        """`namespace/name/protocol/port name`, with a short hash: a valid, unique nft chain-name suffix."""
        parts = (self.namespace, self.name, self.protocol, self.port_name or str(self.port))
        digest = hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]
        return f"{digest}-" + "/".join(_NAME_PART.sub("_", part.lower()) for part in parts)

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.external_ips)


@dataclass(frozen=True)
class Target:
    """One path the rules program: a `protocol` packet to `address`:`port` may be DNATed to `endpoint_ip`:
    `endpoint_port`. `address` None is a node port (on every node address and 127.0.0.1)."""

    protocol: str
    address: str | None
    port: int
    endpoint_ip: str
    endpoint_port: int


def compile_ruleset(table: str, ports: list[ServicePort], node_name: str, node_addresses: Iterable[str],
                    ranges: Ranges, owner: str = "") -> str:  # fmt: skip
    """The `nft -f` text that replaces table `ip <table>` with the rules for `ports` (`service_ports` of the
    Services and EndpointSlices) as seen from node `node_name` whose addresses are `node_addresses`. `owner`
    names the process that keeps the table (an empty chain `owner-<owner>`), so that others can tell when it has
    gone."""
    node_ips = sorted({ip for ip in node_addresses if _is_ipv4(ip) and not ipaddress.ip_address(ip).is_loopback})
    return _Writer(table, ranges, node_name).render(ports, node_ips, owner)


def service_ports(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
    """Every proxied port of `services` (headless, ExternalName and malformed ones have none), sorted."""
    by_service: dict[tuple[str, str], list[Obj]] = defaultdict(list)
    for endpoint_slice in slices:
        meta = endpoint_slice.get("metadata") or {}
        service_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service_name and endpoint_slice.get("addressType") == "IPv4":
            by_service[(meta.get("namespace", ""), service_name)].append(endpoint_slice)
    ports = []
    for service in services:
        meta = service.get("metadata") or {}
        ports.extend(_ports_of(service, by_service.get((meta.get("namespace", ""), meta.get("name", "")), [])))
    return sorted(ports, key=lambda p: p.key)


def cluster_endpoints(port: ServicePort) -> tuple[Endpoint, ...]:
    """The endpoints any client may reach: the ready ones, or, when none is ready, the serving ones that are
    terminating (kube's ProxyTerminatingEndpoints: a rolling update's last pods keep serving)."""
    return _usable(port.endpoints)


def local_endpoints(port: ServicePort, node_name: str) -> tuple[Endpoint, ...]:
    """The endpoints on node `node_name`, chosen as `cluster_endpoints` chooses among all."""
    return _usable(tuple(e for e in port.endpoints if e.node_name == node_name))


def service_targets(ports: Iterable[ServicePort], node_name: str) -> frozenset[Target]:
    """Every (service address or node port, endpoint) pair that the rules for `ports` on node `node_name` DNAT
    to: what a sync adds and removes, for the conntrack clean-up of removed endpoints."""
    targets: set[Target] = set()
    for port in ports:
        everywhere = cluster_endpoints(port)
        if not everywhere:
            continue  # refused, never DNATed
        here = local_endpoints(port, node_name)
        internal = here if port.internal_local else everywhere
        # external addresses: all endpoints for pods and the host, this node's for the rest with policy Local
        external = set(everywhere) | set(here) if port.external_local else set(everywhere)
        paths: list[tuple[str | None, int, Iterable[Endpoint]]] = [(port.cluster_ip, port.port, internal)]
        paths += [(ip, port.port, external) for ip in port.external_ips]
        if port.node_port:
            paths.append((None, port.node_port, external))
        for address, number, endpoints in paths:
            targets.update(Target(port.protocol, address, number, e.ip, e.port) for e in endpoints)
    return frozenset(targets)


# -- reading Services and EndpointSlices -----------------------------------------------------------------------


def _ports_of(service: Obj, slices: list[Obj]) -> list[ServicePort]:
    spec = service.get("spec") or {}
    meta = service.get("metadata") or {}
    cluster_ip = spec.get("clusterIP") or ""
    if spec.get("type") == "ExternalName" or not _is_ipv4(cluster_ip):
        return []  # headless ("None"), ExternalName, or not yet allocated: nothing to proxy
    external_ips = [ip for ip in spec.get("externalIPs") or () if _is_ipv4(ip)]
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ():
        # ipMode Proxy: the load balancer itself delivers to the node, the IP must not be short-circuited here
        if isinstance(ingress, dict) and _is_ipv4(ingress.get("ip")) and ingress.get("ipMode") != "Proxy":
            external_ips.append(ingress["ip"])
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = _positive_int(client_ip.get("timeoutSeconds")) or DEFAULT_AFFINITY_SECONDS
    ports = []
    for port in spec.get("ports") or ():
        protocol = PROTOCOLS.get(port.get("protocol") or "TCP") if isinstance(port, dict) else None
        number = _port_number(port.get("port")) if isinstance(port, dict) else None
        if protocol is None or number is None:
            continue
        ports.append(
            ServicePort(
                namespace=meta.get("namespace", ""),
                name=meta.get("name", ""),
                port_name=port.get("name") or "",
                protocol=protocol,
                port=number,
                cluster_ip=cluster_ip,
                node_port=_port_number(port.get("nodePort")),
                external_ips=tuple(sorted(set(external_ips))),
                affinity_seconds=affinity,
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                external_local=spec.get("externalTrafficPolicy") == "Local",
                endpoints=_endpoints(port.get("name") or "", protocol, slices),
            )
        )
    return ports


def _endpoints(port_name: str, protocol: str, slices: list[Obj]) -> tuple[Endpoint, ...]:
    """The endpoints of one service port across the service's slices (each slice says which port number its
    endpoints serve it on), without duplicates."""
    found: dict[tuple[str, int], Endpoint] = {}
    for endpoint_slice in slices:
        number = None
        for slice_port in endpoint_slice.get("ports") or ():
            if not isinstance(slice_port, dict):
                continue
            same_protocol = PROTOCOLS.get(slice_port.get("protocol") or "TCP") == protocol
            if (slice_port.get("name") or "") == port_name and same_protocol:
                number = _port_number(slice_port.get("port"))
        if number is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or ():
            if not isinstance(endpoint, dict):
                continue
            conditions = endpoint.get("conditions") or {}
            # kube-proxy: an unset `ready` means ready, an unset `serving` means what `ready` says
            ready = conditions.get("ready") is not False
            serving = conditions.get("serving", ready) is not False
            terminating = conditions.get("terminating") is True
            node_name = endpoint.get("nodeName") if isinstance(endpoint.get("nodeName"), str) else None
            for ip in (endpoint.get("addresses") or ())[:1]:  # kube uses an endpoint's first address
                if _is_ipv4(ip) and (ip, number) not in found:
                    found[(ip, number)] = Endpoint(ip, number, node_name, ready, serving, terminating)
    return tuple(sorted(found.values(), key=lambda e: (ipaddress.ip_address(e.ip), e.port)))


def _usable(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    ready = tuple(e for e in endpoints if e.ready)
    return ready or tuple(e for e in endpoints if e.serving and e.terminating)


def _is_ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def _port_number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536 else None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- writing the ruleset ---------------------------------------------------------------------------------------


class _Writer:
    """Renders the table; chains are collected first and written inside one `table { }` block."""

    def __init__(self, table: str, ranges: Ranges, node_name: str) -> None:
        self.table = table
        self.ranges = ranges
        self.node_name = node_name
        self.chains: dict[str, list[str]] = {}
        self.sets: list[str] = []

    def render(self, ports: list[ServicePort], node_ips: list[str], owner: str) -> str:
        # address . protocol . port (ClusterIPs, external and load-balancer IPs), and protocol . node port
        service_ips: list[str] = []
        node_ports: list[str] = []
        refused_ips: list[str] = []
        refused_node_ports: list[str] = []
        for port in ports:
            addresses = [(port.cluster_ip, "svc")] + [(ip, "ext") for ip in port.external_ips]
            if not cluster_endpoints(port):
                # not DNATed, the connection meets the filter chains' refusal instead (a reject here, in a nat
                # chain, was measured to reach the host's own clients but not pods)
                refused_ips += [f"{ip} . {port.protocol} . {port.port} : goto refuse" for ip, _ in addresses]
                if port.node_port:
                    refused_node_ports.append(f"{port.protocol} . {port.node_port} : goto refuse")
                continue
            self._service_port(port)
            service_ips += [f"{ip} . {port.protocol} . {port.port} : goto {kind}-{port.key}" for ip, kind in addresses]
            if port.node_port:
                node_ports.append(f"{port.protocol} . {port.node_port} : goto ext-{port.key}")
        self._base_chains(node_ips)
        if owner:
            self.chains[f"{OWNER_CHAIN_PREFIX}{_NAME_PART.sub('_', owner)}"] = []
        lines = [f"add table ip {self.table}", f"delete table ip {self.table}", f"table ip {self.table} {{"]
        lines += _map("service-ips", "ipv4_addr . inet_proto . inet_service : verdict", service_ips)
        lines += _map("service-nodeports", "inet_proto . inet_service : verdict", node_ports)
        lines += _map("no-endpoint-services", "ipv4_addr . inet_proto . inet_service : verdict", refused_ips)
        lines += _map("no-endpoint-nodeports", "inet_proto . inet_service : verdict", refused_node_ports)
        lines += self.sets
        for name, body in self.chains.items():
            lines.append(f"  chain {name} {{")
            lines.extend(f"    {line}" for line in body)
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _base_chains(self, node_ips: list[str]) -> None:
        pods = str(self.ranges.pod_cidr)
        local_ranges = f"{{ {self.ranges.service_cidr}, {self.ranges.load_balancer_range} }}"
        self.chains["nat-prerouting"] = ["type nat hook prerouting priority dstnat; policy accept;", "jump services"]
        self.chains["nat-output"] = ["type nat hook output priority -100; policy accept;", "jump services"]
        self.chains["services"] = self._lookups("service-ips", "service-nodeports", node_ips)
        self.chains["mark-for-masquerade"] = [f"meta mark set meta mark or {MASQUERADE_MARK}"]
        self.chains["masquerading"] = [
            f"meta mark & {MASQUERADE_MARK} == 0 return",
            f"meta mark set meta mark xor {MASQUERADE_MARK}",
            # not kube's fully-random: measured here (bench.services, many short connections to one pod), with
            # random source ports about 1 connection in 100 waited a second for its SYN to be retransmitted and
            # the ClusterIP reached 0.45x of the direct rate; keeping the client's port gave 0.86x
            "masquerade",
        ]
        self.chains["nat-postrouting"] = [
            "type nat hook postrouting priority srcnat - 10; policy accept;",
            "jump masquerading",
            f"ip saddr {pods} ip daddr {pods} snat ip to ip saddr",
        ]
        self.chains["localnet-guard"] = [
            "type filter hook prerouting priority raw; policy accept;",
            'iifname != "lo" ip saddr 127.0.0.0/8 drop',
            'iifname != "lo" ip daddr 127.0.0.0/8 drop',
        ]
        # after the nat hooks: what is still addressed to a service without endpoints was not DNATed
        self.chains["no-endpoints"] = self._lookups("no-endpoint-services", "no-endpoint-nodeports", node_ips)
        self.chains["refuse"] = ["meta l4proto tcp reject with tcp reset", "reject"]
        self.chains["filter-input"] = [
            "type filter hook input priority filter - 10; policy accept;",
            "ct state new jump no-endpoints",
            # only new connections: replies to the host's own service connections (whose source the local
            # route makes the service address itself) come back addressed to the range
            f"ct state new ip daddr {local_ranges} goto unassigned",
        ]
        self.chains["unassigned"] = [
            "meta l4proto tcp reject with tcp reset",
            "reject with icmp type host-unreachable",
        ]
        self.chains["filter-forward"] = ["type filter hook forward priority filter - 10; policy accept;",
                                         "ct state new jump no-endpoints"]  # fmt: skip
        self.chains["filter-output"] = ["type filter hook output priority filter - 10; policy accept;",
                                        "ct state new jump no-endpoints"]  # fmt: skip

    @staticmethod
    def _lookups(addresses: str, node_ports: str, node_ips: list[str]) -> list[str]:
        """Rules that look a packet up in a map by address . protocol . port, then as a NodePort."""
        rules = [f"ip daddr . meta l4proto . th dport vmap @{addresses}"]
        if node_ips:
            rules.append(f"ip daddr {{ {', '.join(node_ips)} }} meta l4proto . th dport vmap @{node_ports}")
        # localhost NodePorts, for the host's own connections (the guard keeps pods from faking them)
        rules.append(f"ip daddr 127.0.0.1 fib saddr type local meta l4proto . th dport vmap @{node_ports}")
        return rules

    def _service_port(self, port: ServicePort) -> None:
        self._endpoint_list(f"all-{port.key}", port, cluster_endpoints(port))
        if port.internal_local or port.external_local:
            self._endpoint_list(f"local-{port.key}", port, local_endpoints(port, self.node_name))
        internal = f"local-{port.key}" if port.internal_local else f"all-{port.key}"
        self.chains[f"svc-{port.key}"] = [
            f"ip saddr != {self.ranges.pod_cidr} jump mark-for-masquerade",
            f"goto {internal}",
        ]
        if not port.has_external:
            return
        if port.external_local:
            self.chains[f"ext-{port.key}"] = [
                f"ip saddr {self.ranges.pod_cidr} goto all-{port.key}",  # pods' traffic is cluster traffic
                "fib saddr type local jump mark-for-masquerade",
                f"fib saddr type local goto all-{port.key}",  # so is the host's own
                f"goto local-{port.key}",  # the rest keeps its source address
            ]
        else:
            self.chains[f"ext-{port.key}"] = ["jump mark-for-masquerade", f"goto all-{port.key}"]

    def _endpoint_list(self, chain: str, port: ServicePort, endpoints: tuple[Endpoint, ...]) -> None:
        if not endpoints:
            self.chains[chain] = ["drop"]  # a Local traffic policy, and no endpoint on this node: kube drops
            return
        body = []
        names = [self._endpoint(port, endpoint) for endpoint in endpoints]
        if port.affinity_seconds:
            body += [f"ip saddr @aff-{name} goto ep-{name}" for name in names]
        choices = ", ".join(f"{i} : goto ep-{name}" for i, name in enumerate(names))
        body.append(f"numgen random mod {len(names)} vmap {{ {choices} }}")
        self.chains[chain] = body

    def _endpoint(self, port: ServicePort, endpoint: Endpoint) -> str:
        """The endpoint's chain (written once, shared by the all- and local- lists); its name suffix."""
        name = f"{port.key}__{endpoint.ip}/{endpoint.port}"
        if f"ep-{name}" in self.chains:
            return name
        body = [f"ip saddr {endpoint.ip} jump mark-for-masquerade"]  # hairpin: the reply must come back here
        if port.affinity_seconds:
            self.sets += [
                f"  set aff-{name} {{",
                "    type ipv4_addr",
                "    flags dynamic,timeout",
                f"    timeout {port.affinity_seconds}s",
                "  }",
            ]
            body.append(f"update @aff-{name} {{ ip saddr }}")
        body.append(f"meta l4proto {port.protocol} dnat to {endpoint.ip}:{endpoint.port}")
        self.chains[f"ep-{name}"] = body
        return name


def _map(name: str, type_: str, elements: list[str]) -> list[str]:
    lines = [f"  map {name} {{", f"    type {type_}"]
    if elements:
        lines.append(f"    elements = {{ {', '.join(elements)} }}")
    return [*lines, "  }"]
