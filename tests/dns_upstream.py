"""A fake upstream resolver for the cluster DNS's tests and benchmark: dnslib's threaded server on 127.0.0.1,
UDP and TCP on one port, answering a made-up zone (no traffic leaves the machine)."""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from tests.cluster import free_port

UPSTREAM_ZONE = "example.test"
BIG_TXT = [("x" * 200) for _ in range(10)]  # 2 KB of TXT: more than a plain UDP answer may hold


class UpstreamZone(BaseResolver):  # type: ignore[misc]
    """`<n>.example.test` A 192.0.2.<n> (any other name under it: 192.0.2.1), `big.example.test` TXT (2 KB),
    everything else NXDOMAIN. `asked`: the latest questions (bounded)."""

    def __init__(self) -> None:
        self.asked: collections.deque[str] = collections.deque(maxlen=10_000)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        self.asked.append(name)
        reply = request.reply()
        if name == f"big.{UPSTREAM_ZONE}":
            reply.add_answer(*(RR(request.q.qname, QTYPE.TXT, rdata=TXT(text), ttl=60) for text in BIG_TXT))
        elif name.endswith("." + UPSTREAM_ZONE) and request.q.qtype == QTYPE.A:
            first = name.split(".", 1)[0]
            address = A(f"192.0.2.{first if first.isdigit() else 1}")
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=address, ttl=60))
        elif not name.endswith("." + UPSTREAM_ZONE):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class _PlainUdpHandler(DNSHandler):  # type: ignore[misc]
    udplen = 512  # truncate UDP answers as a resolver without EDNS must


@dataclass
class FakeUpstream:
    port: int
    zone: UpstreamZone


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    """The fake resolver, serving until the block ends."""
    zone = UpstreamZone()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", logf=lambda _: None)
    port = free_udp_and_tcp_port()
    servers = [
        DNSServer(zone, address="127.0.0.1", port=port, tcp=tcp, logger=quiet, handler=_PlainUdpHandler)
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    try:
        yield FakeUpstream(port, zone)
    finally:
        for server in servers:
            server.stop()


def free_udp_and_tcp_port() -> int:
    """A loopback port free for both UDP and TCP."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
