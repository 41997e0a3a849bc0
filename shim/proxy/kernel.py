"""What the service proxy asks of the kernel: one atomic `nft -f` per sync, the service ranges routed locally,
route_localnet and hairpin mode on the pod bridge (NodePorts on 127.0.0.1, pods reaching themselves through
their Service), and the removal of tables whose proxies are gone.

A proxy's table outlives its process on purpose (a restart keeps the rules; established connections live in
conntrack anyway). But a cluster that never comes back (a deleted data dir, a finished test) would leave rules
that, registered earlier at the same hook priority, win over a new cluster's for the same address (every
cluster's `kubernetes` Service is the first address of the range). So each table names its owner, the proxy
process (pid and start time, an empty chain `owner-<pid>-<start>`), and every proxy removes the kube-shim
tables whose owner no longer runs.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import json
import logging
import os
import re
import socket
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

from shim.iproute import IpError, ip
from shim.proxy.rules import OWNER_CHAIN_PREFIX, TABLE_PREFIX

log = logging.getLogger("shim.proxy")

NFT_TIMEOUT = 30.0  # seconds; a ruleset of thousands of services loads in well under one
_SIOCGIFADDR = 0x8915
_ERROR_LOCATION = re.compile(r":(\d+):\d+(?:-\d+)?: Error: ")
SYSCTL_CONF = Path("/proc/sys/net/ipv4/conf")
SYS_NET = Path("/sys/class/net")


class KernelError(Exception):
    """The kernel refused a change; the message says what and where."""


async def apply_ruleset(ruleset: str) -> None:
    """Load `ruleset` with one `nft -f` transaction (all of it or nothing). KernelError names the refused line
    of the ruleset."""
    code, _, stderr = await _nft(["-f", "-"], ruleset)
    if code != 0:
        raise KernelError(describe_nft_error(stderr, ruleset))


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
        try:
            ip("route", "replace", "local", str(cidr), "dev", "lo", "table", "local")
        except IpError as exc:
            raise KernelError(str(exc)) from None


def prepare_pod_bridges(
    pod_cidrs: Iterable[ipaddress.IPv4Network], conf: Path = SYSCTL_CONF, net: Path = SYS_NET
) -> list[str]:
    """On every interface holding an address of `pod_cidrs` (the node's pod bridge): route_localnet, so that
    connections to a NodePort on 127.0.0.1 may be forwarded to pods (as kube-proxy sets it), and hairpin mode on
    each of its ports, so that a pod reaching itself through its Service gets the packet back through the port it
    came from (br_netfilter bridges a DNAT to the same bridge; kubelet's hairpin-veth mode). The settings
    changed, as `interface/setting`; a port or bridge that appears later is handled by a later call."""
    changed = []
    cidrs = list(pod_cidrs)
    for _, name in socket.if_nameindex():
        address = interface_ipv4(name)
        if address is None or not any(address in cidr for cidr in cidrs):
            continue
        settings = [conf / name / "route_localnet"]
        ports = net / name / "brif"
        if ports.is_dir():
            settings += [port / "hairpin_mode" for port in ports.iterdir()]
        for setting in settings:
            if _switch_on(setting):
                changed.append(f"{setting.parent.name}/{setting.name}")
    return changed


def _switch_on(setting: Path) -> bool:
    """Write 1 to a kernel setting unless it holds 1 already; whether it changed."""
    try:
        if setting.read_text().strip() == "1":
            return False
        setting.write_text("1")
        return True
    except OSError as exc:  # the interface went away meanwhile
        log.debug("%s: %s", setting, exc)
        return False


def interface_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The primary IPv4 address of interface `name`, or None (no address, or no such interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return ipaddress.IPv4Address(answer[20:24])


def this_process() -> str:
    """`<pid>-<start time>`: this process, told apart from a later one that reuses its pid."""
    pid = os.getpid()
    return f"{pid}-{_start_time(pid)}"


async def remove_orphaned_tables(own_table: str) -> list[str]:
    """Delete every `ip kube-shim-*` table but `own_table` whose owner process is gone (or that names none); the
    tables removed. A table that vanishes meanwhile is not an error."""
    listing = await _nft_output("-j", "list", "chains")
    owners: dict[str, list[str]] = {}
    for entry in json.loads(listing).get("nftables", []):
        chain = entry.get("chain")
        if not chain or chain.get("family") != "ip" or not str(chain.get("table", "")).startswith(TABLE_PREFIX):
            continue
        names = owners.setdefault(chain["table"], [])
        if str(chain.get("name", "")).startswith(OWNER_CHAIN_PREFIX):
            names.append(chain["name"][len(OWNER_CHAIN_PREFIX) :])
    removed = []
    for table, names in owners.items():
        if table == own_table or any(_alive(owner) for owner in names):
            continue
        try:
            await _nft_output("delete", "table", "ip", table)
        except KernelError as exc:
            log.debug("removing table %s: %s", table, exc)
            continue
        removed.append(table)
    return removed


def _alive(owner: str) -> bool:
    pid, _, started = owner.partition("-")
    return pid.isdigit() and _start_time(int(pid)) == started


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or "" if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # after the command name, which may hold spaces


async def _nft_output(*args: str) -> str:
    """The output of one nft command; KernelError with its complaint when it fails."""
    code, stdout, stderr = await _nft(list(args))
    if code != 0:
        raise KernelError(f"nft {' '.join(args)}: {stderr.strip()}")
    return stdout


async def _nft(args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `nft ARGS`, fed `stdin`; KernelError if nft cannot run or hangs."""
    return await run_tool(["nft", *args], stdin)


async def run_tool(argv: list[str], stdin: str | None = None, timeout: float = NFT_TIMEOUT) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the command `argv`, fed `stdin`; KernelError if it cannot run or takes longer
    than `timeout` seconds."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as exc:
        raise KernelError(f"cannot run {argv[0]}: {exc}") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise KernelError(f"{' '.join(argv)} did not finish within {timeout:.0f}s") from None
    assert process.returncode is not None
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
