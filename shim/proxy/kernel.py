"""What the service proxy asks of the kernel: one atomic `nft -f` per sync, the service ranges routed locally,
and route_localnet on the pod bridges (for NodePorts on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import re
import socket
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("shim.proxy")

NFT_TIMEOUT = 30.0  # seconds; a ruleset of thousands of services loads in well under one
_SIOCGIFADDR = 0x8915
_ERROR_LOCATION = re.compile(r":(\d+):\d+(?:-\d+)?: Error: ")
SYSCTL_CONF = Path("/proc/sys/net/ipv4/conf")


class KernelError(Exception):
    """The kernel refused a change; the message says what and where."""


async def apply_ruleset(ruleset: str) -> None:
    """Load `ruleset` with one `nft -f -` transaction (all of it or nothing). KernelError names the refused
    line of the ruleset."""
    try:
        process = await asyncio.create_subprocess_exec(
            "nft", "-f", "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        raise KernelError(f"cannot run nft: {exc}") from None
    try:
        _, stderr = await asyncio.wait_for(process.communicate(ruleset.encode()), NFT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise KernelError(f"nft did not finish within {NFT_TIMEOUT:.0f}s") from None
    if process.returncode != 0:
        raise KernelError(describe_nft_error(stderr.decode(errors="replace"), ruleset))


def describe_nft_error(stderr: str, ruleset: str) -> str:
    """nft's complaint, with the ruleset line it points at (nft's own echo of it may be cut)."""
    message = stderr.strip().splitlines()[0] if stderr.strip() else "nft failed without a message"
    if (match := _ERROR_LOCATION.search(stderr)) is not None:
        lines = ruleset.splitlines()
        number = int(match.group(1))
        if 0 < number <= len(lines):
            message += f" (ruleset line {number}: {lines[number - 1].strip()})"
    return message


def ensure_local_routes(cidrs: Iterable[ipaddress.IPv4Network]) -> None:
    """Route every address of `cidrs` to this host (`local` routes on lo), so that no service address ever
    leaves through the default route and the host's own connections to it pass the nat output hook.
    Idempotent; blocking (run it in a thread). KernelError if `ip` refuses."""
    for cidr in cidrs:
        command = ["ip", "route", "replace", "local", str(cidr), "dev", "lo", "table", "local"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=NFT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KernelError(f"{' '.join(command)}: {exc}") from None
        if result.returncode != 0:
            raise KernelError(f"{' '.join(command)}: {result.stderr.strip()}")


def enable_route_localnet(pod_cidrs: Iterable[ipaddress.IPv4Network], conf: Path = SYSCTL_CONF) -> list[str]:
    """Set route_localnet on every interface holding an address of `pod_cidrs` (the node's pod bridge), so that
    connections to a NodePort on 127.0.0.1 may be forwarded to pods, as kube-proxy does; the interfaces
    changed. An interface that appears later is handled by a later call."""
    changed = []
    cidrs = list(pod_cidrs)
    for _, name in socket.if_nameindex():
        address = interface_ipv4(name)
        if address is None or not any(address in cidr for cidr in cidrs):
            continue
        setting = conf / name / "route_localnet"
        try:
            if setting.read_text().strip() != "1":
                setting.write_text("1")
                changed.append(name)
        except OSError as exc:  # the interface went away meanwhile
            log.debug("route_localnet on %s: %s", name, exc)
    return changed


def interface_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The primary IPv4 address of interface `name`, or None (no address, or no such interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return ipaddress.IPv4Address(answer[20:24])
