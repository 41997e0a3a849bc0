"""The host address for pods: `10.244.255.254`, a /32 on `lo` where pods reach the control plane.

Pods cannot use 127.0.0.1 (that is their own loopback) and the Endpoints API refuses loopback addresses, so
`kube-shim up` with the Podman runtime puts this address on the host's `lo`; the API server (and the cluster
DNS) listen there and publish it in their services' endpoints. Every pod reaches it through its bridge
gateway, and it never leaves the machine (it is a local address). `10.244.255.0/24` is kept out of the node
pod subnets so no pod is ever given an address next to it.
"""

from __future__ import annotations

import ipaddress

from shim.iproute import IpError, ip, ip_json

HOST_ADDRESS = "10.244.255.254"
RESERVED_RANGE = ipaddress.IPv4Network("10.244.255.0/24")  # never a node's pod subnet
DEVICE = "lo"


class HostAddressError(Exception):
    """The address could not be put on the host; the message says why and what to do."""


def ensure_host_address(address: str = HOST_ADDRESS) -> None:
    """Put `address`/32 on `lo` unless it is already local (idempotent: `ip addr replace`), then check that the
    host now owns it. Raises HostAddressError when it cannot."""
    if is_local_address(address):
        return
    try:
        ip("addr", "replace", f"{address}/32", "dev", DEVICE)
    except IpError as exc:
        raise HostAddressError(f"{exc} (putting the pods' host address on lo needs root, or CAP_NET_ADMIN)") from None
    if not is_local_address(address):
        raise HostAddressError(f"{address} is on {DEVICE} but the host still does not accept it as its own")


def is_local_address(address: str) -> bool:
    """Whether the host takes packets to `address` as its own (`ip route get` answers a `local` route)."""
    try:
        routes = ip_json("route", "get", address)
    except IpError:  # no route at all (or no `ip`): not ours
        return False
    return any(route.get("type") == "local" for route in routes)
