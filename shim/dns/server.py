"""The DNS server's transports: UDP datagrams and length-prefixed TCP (RFC 1035 4.2) on one host and port.

Neither transport lets a packet end it: a malformed query gets FORMERR (or is dropped when it is too short
to answer), and anything unexpected while answering one query is logged and forgotten. TCP connections are
bounded in number and closed when idle; forwarded queries are bounded by the Forwarder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

from shim.dns.resolver import Query, Resolver

log = logging.getLogger("shim.dns")

MAX_TCP_CONNECTIONS = 128  # each holds a file descriptor, as does each forwarded query
TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP client may stay silent (CoreDNS's default read timeout is similar)
BIND_ATTEMPTS = 20  # with port 0: tries to find a port free for both UDP and TCP


class DnsServer:
    """Serves `resolver` on `host:port` over UDP and TCP; port 0 picks a port free for both."""

    def __init__(self, resolver: Resolver, host: str, port: int = 0) -> None:
        self.resolver = resolver
        self.host = host
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp_connections = 0

    async def start(self) -> None:
        """Bind both transports (OSError when the address cannot be served)."""
        loop = asyncio.get_running_loop()
        for attempt in range(BIND_ATTEMPTS if self.port == 0 else 1):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self.port)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                transport.close()
                if self.port != 0 or attempt == BIND_ATTEMPTS - 1:
                    raise
                continue
            self._udp, self.port = transport, port
            return

    async def stop(self) -> None:
        """Stop listening and drop what is in progress."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)

    # -- UDP -------------------------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: Any) -> None:
        """Answer one UDP query: at once from the cluster zone, or from a task that forwards it."""
        transport = self._udp
        if transport is None:
            return
        query = self.resolver.parse(data)
        if query is None:
            return
        if isinstance(query, bytes):
            transport.sendto(query, addr)
            return
        reply = self.resolver.local(query, over_tcp=False)
        if reply is not None:
            transport.sendto(reply, addr)
            return
        self._spawn(self._forward_udp(transport, query, addr))

    async def _forward_udp(self, transport: asyncio.DatagramTransport, query: Query, addr: Any) -> None:
        reply = await self.resolver.remote(query, over_tcp=False)
        if not transport.is_closing():
            transport.sendto(reply, addr)

    # -- TCP -------------------------------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tcp_connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self._tcp_connections += 1
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                reply = await self._answer_tcp(data)
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away or stayed silent: nothing to answer
        except Exception:
            log.exception("DNS over TCP from %s failed", writer.get_extra_info("peername"))
        finally:
            self._tcp_connections -= 1
            writer.close()

    async def _answer_tcp(self, data: bytes) -> bytes | None:
        query = self.resolver.parse(data)
        if query is None or isinstance(query, bytes):
            return query
        reply = self.resolver.local(query, over_tcp=True)
        return reply if reply is not None else await self.resolver.remote(query, over_tcp=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("forwarding a DNS query failed", exc_info=task.exception())


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.server.on_datagram(data, addr)
        except Exception:  # one query's bug must not stop the others
            log.exception("answering a DNS query from %s failed", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP socket error: %s", exc)  # e.g. a client's port was unreachable for our answer
