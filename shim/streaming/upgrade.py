"""The raw HTTP/1.1 connection upgrade that exec, attach and port-forward ride on (SPDY/3.1 and relays).

The node agent's streaming server accepts upgrades with it, and the API server's node proxy relays them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

# inbound bytes buffered for a slow consumer before the socket stops being read
READ_HIGH_WATER, READ_LOW_WATER = 1 << 20, 1 << 18


class UpgradedConnection:
    """The bytes a client sends after our `101 Switching Protocols`, as an async iterator of chunks.

    aiohttp hands over the connection itself only for WebSockets; for anything else this object takes the
    place of the request-body parser (`RequestHandler.set_parser`), which receives every later byte.
    """

    def __init__(self, request: web.Request) -> None:
        self._transport = request.transport
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._buffered = 0
        self._paused = False
        request.protocol.set_parser(self)  # type: ignore[arg-type]

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._chunks.put_nowait(bytes(data))
        self._buffered += len(data)
        if self._buffered > READ_HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._chunks.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            self._buffered -= len(chunk)
            if self._paused and self._buffered < READ_LOW_WATER and self._transport is not None:
                self._paused = False
                self._transport.resume_reading()
            yield chunk


async def accept_upgrade(
    request: web.Request, headers: dict[str, str]
) -> tuple[UpgradedConnection, web.StreamResponse]:
    """Send `101 Switching Protocols` with `headers`; returns the raw connection both ways.

    Write with `response.write()`: a 101 has no body framing, so the bytes go out as they are.
    """
    connection = UpgradedConnection(request)  # before the 101: the client may answer at once
    response = web.StreamResponse(status=101, headers=headers)
    response.force_close()  # the connection is never an HTTP connection again
    await response.prepare(request)
    return connection, response
