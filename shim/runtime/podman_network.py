"""The node's own Podman bridge network: one /24 of 10.244.0.0/16 per node of each cluster.

The network is named after the cluster and the node (`kube-shim-<cluster id>-<node>`): two clusters on one
host both have a node named after the host, and must not share a network. The /24 is derived from a hash of
cluster id and node name, so a node gets the same subnet each time it creates its network on a machine.
Collisions (two nodes hashing alike, or a subnet already used by something else) are avoided by probing the
following /24s until one overlaps neither a network of this Podman root (every cluster's, as the root is
shared) nor a route on the host (a bridge of another root, or any other interface, shows up there). Two
nodes creating their networks at the same moment may pick the same /24; Podman refuses the second, which
then picks again. `10.244.255.0/24` is never picked: the pods' host address lives there (`shim.hostaddress`).
The bridge is named after the chosen /24 (`kshim<index>`, within the 15 bytes of an
interface name) and skipped if that interface exists, because bridge names are host-wide while Podman's
network configs are per root.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import struct
from pathlib import Path

import podman

from shim.hostaddress import RESERVED_RANGE
from shim.runtime.base import RuntimeFailure

POD_NETWORK_RANGE = ipaddress.IPv4Network("10.244.0.0/16")
SUBNET_PREFIX = 24
BRIDGE_PREFIX = "kshim"
CREATE_ATTEMPTS = 5  # picks of a /24 when other nodes keep taking the one picked
# Podman's words when another network took the subnet or the bridge name since we looked
RACES = ("is already used on the host or by another config", "already in use")


def network_name(cluster_id: str, node_name: str) -> str:
    """The default network name of a node of a cluster."""
    return f"kube-shim-{cluster_id}-{node_name}"


def ensure_pod_network(client: podman.PodmanClient, name: str, owner: dict[str, str]) -> None:
    """Create the bridge network `name`, labelled `owner` (cluster and node), unless it exists (blocking; run it
    in a thread)."""
    if client.networks.exists(name):
        return
    error = ""
    for _ in range(CREATE_ATTEMPTS):
        index, subnet = free_subnet("/".join(owner.values()), subnets_in_use(client), Path("/sys/class/net"))
        body = {
            "name": name,
            "driver": "bridge",
            "network_interface": f"{BRIDGE_PREFIX}{index}",
            # `subnet=` is silently ignored by podman-py (ENVIRONMENT.md bug 8): the API takes `subnets`
            "subnets": [{"subnet": str(subnet), "gateway": str(subnet.network_address + 1)}],
            "dns_enabled": False,  # pods get cluster DNS through their own resolv.conf
            "labels": owner,
        }
        headers = {"Content-Type": "application/json"}
        response = client.api.post("/networks/create", data=json.dumps(body), headers=headers)
        if response.ok or response.status_code == 409:  # 409: an agent of the same node made it a moment ago
            return
        error = response.text.strip()
        if not any(race in error for race in RACES):
            break
    raise RuntimeFailure("NetworkNotReady", f"creating podman network {name}: {error}")


def free_subnet(
    identity: str, taken: list[ipaddress.IPv4Network], interfaces: Path
) -> tuple[int, ipaddress.IPv4Network]:
    """(index, subnet): the /24 `identity` hashes to, or the next one that overlaps nothing in `taken`."""
    subnets = list(POD_NETWORK_RANGE.subnets(new_prefix=SUBNET_PREFIX))
    start = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big") % len(subnets)
    for offset in range(len(subnets)):
        index = (start + offset) % len(subnets)
        candidate = subnets[index]
        if candidate.overlaps(RESERVED_RANGE):
            continue
        if (interfaces / f"{BRIDGE_PREFIX}{index}").exists():
            continue
        if not any(candidate.overlaps(used) for used in taken):
            return index, candidate
    raise RuntimeFailure("NetworkNotReady", f"no free /{SUBNET_PREFIX} left in {POD_NETWORK_RANGE}")


def subnets_in_use(client: podman.PodmanClient) -> list[ipaddress.IPv4Network]:
    """IPv4 subnets of this root's networks and of the host's routes (except the default route)."""
    used = [
        ipaddress.ip_network(entry["subnet"])
        for network in client.networks.list()
        for entry in network.attrs.get("subnets") or []
    ]
    return [net for net in used if isinstance(net, ipaddress.IPv4Network)] + host_routes()


def host_routes(route_table: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The destination networks of the host's IPv4 routes, without the default route."""
    routes = []
    for line in route_table.read_text().splitlines()[1:]:
        fields = line.split()
        destination, mask = (socket.inet_ntoa(struct.pack("<I", int(fields[i], 16))) for i in (1, 7))
        if mask != "0.0.0.0":
            routes.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
    return routes
