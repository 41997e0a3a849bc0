"""Forwarding what is not the cluster's to upstream resolvers (CoreDNS's `forward . /etc/resolv.conf`).

Each forwarded query goes out over a fresh UDP socket connected to the upstream (a new random source port
and query ID per query, and the kernel drops datagrams from anyone else), then over TCP when the upstream
truncated it and the client asked over TCP. An upstream that refuses (ICMP port unreachable) or does not
answer within `timeout` is skipped for the next; when all fail the caller answers SERVFAIL. At most
`max_in_flight` queries are out at once: beyond that a query is refused at once instead of queued.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import struct
from pathlib import Path

log = logging.getLogger("shim.dns")

DNS_PORT = 53
MAX_UPSTREAMS = 3  # resolv.conf's MAXNS
HEADER_SIZE = 12
TC_BIT = 0x0200
MAX_MESSAGE = 65_535

Upstream = tuple[str, int]


class ForwarderBusy(Exception):
    """More queries are being forwarded than the bound allows."""


class UpstreamFailed(Exception):
    """No upstream answered."""


class Forwarder:
    """Sends queries to `upstreams` in order until one answers."""

    def __init__(self, upstreams: list[Upstream], timeout: float = 2.0, max_in_flight: int = 256) -> None:
        self.upstreams = upstreams[:MAX_UPSTREAMS]
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def forward(self, query: bytes, over_tcp: bool) -> bytes:
        """The first upstream answer to `query` (a whole DNS message), with the query's own ID. `over_tcp`:
        the client asked over TCP, so a truncated UDP answer is fetched again over TCP (a UDP client gets the
        truncated one and retries over TCP itself). Raises ForwarderBusy or UpstreamFailed."""
        if self.in_flight >= self.max_in_flight:
            raise ForwarderBusy(f"{self.in_flight} queries already forwarded")
        if len(query) < HEADER_SIZE:
            raise UpstreamFailed("not a DNS message")
        self.in_flight += 1
        try:
            problems = []
            for upstream in self.upstreams:
                try:
                    return await self._ask(upstream, query, over_tcp)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    problems.append(f"{upstream[0]}:{upstream[1]}: {type(exc).__name__} {exc}".strip())
            raise UpstreamFailed("; ".join(problems) or "no upstream resolvers configured")
        finally:
            self.in_flight -= 1

    async def _ask(self, upstream: Upstream, query: bytes, over_tcp: bool) -> bytes:
        client_id = query[:2]
        query_id = secrets.token_bytes(2)
        outgoing = query_id + query[2:]
        async with asyncio.timeout(self.timeout):
            answer = await _ask_udp(upstream, outgoing)
            if over_tcp and struct.unpack_from("!H", answer, 2)[0] & TC_BIT:
                answer = await _ask_tcp(upstream, outgoing)
        return client_id + answer[2:]


def host_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The nameservers of the host's resolv.conf (none if it cannot be read), on port 53."""
    try:
        text = resolv_conf.read_text(errors="replace")
    except OSError as exc:
        log.warning("cannot read %s for upstream resolvers: %s", resolv_conf, exc)
        return []
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append((fields[1].split("%", 1)[0], DNS_PORT))  # drop an IPv6 zone suffix
    return servers[:MAX_UPSTREAMS]


def parse_upstream(text: str) -> Upstream:
    """`IP`, `IP:PORT` or `[IPv6]:PORT` as an upstream; ValueError when it is none of those."""
    host, port = text, DNS_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else DNS_PORT
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65_536:
        raise ValueError(f"port {port} out of range")
    return host, port


async def _ask_udp(upstream: Upstream, message: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _OneAnswer(answered, message[:2]), remote_addr=upstream)
    try:
        transport.sendto(message)
        return await answered
    finally:
        transport.close()


async def _ask_tcp(upstream: Upstream, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack("!H", len(message)) + message)
        await writer.drain()
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        answer = await reader.readexactly(length)
        if length < HEADER_SIZE or answer[:2] != message[:2]:
            raise ValueError("the TCP answer does not match the query")
        return answer
    finally:
        writer.close()


class _OneAnswer(asyncio.DatagramProtocol):
    """Resolves `answered` with the first datagram that carries the query's ID, or with the socket's error
    (a refused port fails at once instead of waiting for the timeout)."""

    def __init__(self, answered: asyncio.Future[bytes], query_id: bytes) -> None:
        self.answered = answered
        self.query_id = query_id

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= HEADER_SIZE and data[:2] == self.query_id and not self.answered.done():
            self.answered.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(exc)
