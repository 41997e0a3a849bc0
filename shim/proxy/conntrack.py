"""UDP flows that outlive their endpoint (kube-proxy's pkg/proxy/conntrack/cleanup.go), deleted after a sync.

A UDP "connection" is only a conntrack entry: a client that keeps sending from one port keeps its entry alive,
and with it the DNAT to an endpoint that may be gone (the cluster DNS restarted on another port), however the
rules changed. TCP needs nothing: a dead endpoint resets or times out the connection, and the client reconnects
from a new port. So after each sync the proxy deletes, with the `conntrack` tool:
- the UDP entries to a service address:port (or node port) whose replies come from an endpoint the sync removed;
- every UDP entry to a service address:port that had no endpoint before and has some now (what the client sent
  meanwhile was refused or dropped; an entry left from then must not keep its packets from being DNATed).
The first sync of a proxy knows no previous rules: it reads the DNATed UDP flows to service addresses from the
kernel (`conntrack -L`) as the previous set, so flows to endpoints removed while no proxy ran go too.
Without the tool (Debian package `conntrack`) nothing is deleted, and that is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from shim.proxy.kernel import KernelError, run_tool
from shim.proxy.rules import ServicePort, Target

log = logging.getLogger("shim.proxy")

DELETE_TIMEOUT = 10.0  # seconds for one `conntrack -D`; it answers in milliseconds
LIST_TIMEOUT = 30.0  # seconds to read every UDP flow (a full table holds hundreds of thousands)
NOTHING_DELETED = "0 flow entries have been deleted"  # what conntrack says, exiting 1, when nothing matched
_FIELD = re.compile(r"\b(src|dst|sport|dport)=(\S+)")

ServiceKey = tuple[str | None, int]  # a service address and port; address None: a node port


@dataclass(frozen=True)
class FlowFilter:
    """Which UDP conntrack entries to delete: original destination `address`:`port` (address None: any
    address, a node port), and, unless None, replies from `reply_ip`:`reply_port` (the removed endpoint)."""

    port: int
    address: str | None = None
    reply_ip: str | None = None
    reply_port: int | None = None

    def arguments(self) -> list[str]:
        """The `conntrack -D` command line that deletes these entries."""
        args = ["conntrack", "-D", "-p", "udp"]
        if self.address is not None:
            args += ["--orig-dst", self.address]
        args += ["--orig-port-dst", str(self.port)]
        if self.reply_ip is not None:
            args += ["--reply-src", self.reply_ip]
        if self.reply_port is not None:
            args += ["--reply-port-src", str(self.reply_port)]
        return args


def stale_flows(previous: Iterable[Target], current: Iterable[Target]) -> list[FlowFilter]:
    """The UDP entries to delete after a sync from the `previous` targets to the `current` ones: those DNATed
    to a removed endpoint, and all of a service address:port that had no endpoint before."""
    before = {t for t in previous if t.protocol == "udp"}
    after = {t for t in current if t.protocol == "udp"}
    newly_active = {(t.address, t.port) for t in after} - {(t.address, t.port) for t in before}
    filters = {FlowFilter(port, address) for address, port in newly_active}
    filters.update(FlowFilter(t.port, t.address, t.endpoint_ip, t.endpoint_port) for t in before - after)
    return sorted(filters, key=lambda f: (f.address or "", f.port, f.reply_ip or "", f.reply_port or 0))


def udp_service_keys(ports: Iterable[ServicePort]) -> set[ServiceKey]:
    """Every address:port (and node port) of the UDP service ports among `ports`, with endpoints or not."""
    keys: set[ServiceKey] = set()
    for port in ports:
        if port.protocol != "udp":
            continue
        keys.update((address, port.port) for address in (port.cluster_ip, *port.external_ips))
        if port.node_port:
            keys.add((None, port.node_port))
    return keys


def listed_target(line: str, keys: set[ServiceKey]) -> Target | None:
    """The target a flow of a `conntrack -L -p udp` listing was DNATed to, if it went to one of the service
    `keys` (its address:port, else its port as a node port); None for any other line."""
    fields = _FIELD.findall(line)
    if len(fields) < 8:
        return None
    original, reply = dict(fields[:4]), dict(fields[4:8])
    try:
        destination, dport = original["dst"], int(original["dport"])
        reply_ip, reply_port = reply["src"], int(reply["sport"])
    except (KeyError, ValueError):
        return None
    if (reply_ip, reply_port) == (destination, dport):
        return None  # not DNATed: no endpoint in it
    if (destination, dport) in keys:
        return Target("udp", destination, dport, reply_ip, reply_port)
    if (None, dport) in keys:
        return Target("udp", None, dport, reply_ip, reply_port)
    return None


class StaleFlowCleaner:
    """Deletes the UDP flows a sync left pointing at removed endpoints; remembers the targets between syncs."""

    def __init__(self) -> None:
        self._previous: frozenset[Target] | None = None
        self._told_missing = False

    async def after_sync(self, ports: list[ServicePort], current: frozenset[Target]) -> list[FlowFilter]:
        """Delete what `stale_flows` finds now that the rules for `ports` (DNATing to `current`) are loaded; the
        filters that were run. Never raises: a failure is logged, and the flows then live until they time out."""
        if shutil.which("conntrack") is None:
            if not self._told_missing:
                self._told_missing = True
                log.warning("no conntrack tool (apt-get install conntrack): UDP flows to removed service "
                            "endpoints will live until they time out")  # fmt: skip
            return []
        previous = self._previous
        if previous is None:
            previous = await _listed_targets(udp_service_keys(ports))
        filters = stale_flows(previous, current)
        for flow_filter in filters:
            await _delete(flow_filter)
        self._previous = current
        return filters


async def _listed_targets(keys: set[ServiceKey]) -> frozenset[Target]:
    """The `listed_target`s among the kernel's UDP flows, read line by line (the table may hold many); empty when
    they cannot be listed (logged)."""
    if not keys:
        return frozenset()
    found: set[Target] = set()
    try:
        process = await asyncio.create_subprocess_exec("conntrack", "-L", "-p", "udp", stdin=subprocess.DEVNULL,
                                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    except OSError as exc:
        log.warning("cannot list UDP flows (%s): flows to endpoints removed before this start stay", exc)
        return frozenset()
    assert process.stdout is not None
    try:
        async with asyncio.timeout(LIST_TIMEOUT):
            async for raw in process.stdout:
                if (target := listed_target(raw.decode(errors="replace"), keys)) is not None:
                    found.add(target)
            await process.wait()
    except (TimeoutError, ValueError) as exc:  # hung, or a line beyond the reader's limit
        log.warning("listing UDP flows failed (%s): flows to endpoints removed before this start stay",
                    exc or "timed out")  # fmt: skip
    finally:
        if process.returncode is None:  # timed out, failed or cancelled: no listing left running
            process.kill()
            await process.wait()
    return frozenset(found)


async def _delete(flow_filter: FlowFilter) -> None:
    try:
        code, _, stderr = await run_tool(flow_filter.arguments(), timeout=DELETE_TIMEOUT)
    except KernelError as exc:
        code, stderr = -1, str(exc)
    if code != 0 and NOTHING_DELETED not in stderr:
        log.warning("%s failed: %s", " ".join(flow_filter.arguments()), stderr.strip())
