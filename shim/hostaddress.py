"""The host address for pods: `10.244.255.254`, a /32 on `lo` where pods reach the control plane.

Pods cannot use 127.0.0.1 (that is their own loopback) and the Endpoints API refuses loopback addresses, so
`kube-shim up` with the Podman runtime puts this address on the host's `lo`; the API server (and the cluster
DNS) listen there and publish it in their services' endpoints. Every pod reaches it through its bridge
gateway, and it never leaves the machine (it is a local address). `10.244.255.0/24` is kept out of the node
pod subnets so no pod is ever given an address next to it.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

HOST_ADDRESS = "10.244.255.254"
RESERVED_RANGE = ipaddress.IPv4Network("10.244.255.0/24")  # never a node's pod subnet
DEVICE = "lo"
IP_TIMEOUT = 10.0  # seconds an `ip` command may take


class HostAddressError(Exception):
    """The address could not be put on the host; the message says why and what to do."""


def ensure_host_address(address: str = HOST_ADDRESS) -> None:
    """Put `address`/32 on `lo` unless it is already local (idempotent: `ip addr replace`), then check that the
    host now owns it. Raises HostAddressError when it cannot."""
    if is_local_address(address):
        return
    command = ["ip", "addr", "replace", f"{address}/32", "dev", DEVICE]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostAddressError(f"cannot run {' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        raise HostAddressError(
            f"{' '.join(command)} failed: {done.stderr.strip() or done.returncode} "
            "(putting the pods' host address on lo needs root, or CAP_NET_ADMIN)"
        )
    if not is_local_address(address):
        raise HostAddressError(f"{address} is on {DEVICE} but the host still does not accept it as its own")


def is_local_address(address: str) -> bool:
    """Whether the host takes packets to `address` as its own (`ip route get` answers a `local` route)."""
    command = ["ip", "-j", "route", "get", address]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostAddressError(f"cannot run {' '.join(command)}: {exc}") from None
    try:
        routes = json.loads(done.stdout) if done.returncode == 0 else []
    except ValueError:
        routes = []
    return any(route.get("type") == "local" for route in routes)
