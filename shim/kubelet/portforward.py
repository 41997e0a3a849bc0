"""Port-forward: connections from the client to ports of the pod, in the three forms clients use.

- SPDY/3.1 (kubectl): per forwarded connection the client opens two streams with the same `requestid`
  header, `streamtype: error` and `streamtype: data`, and a `port` header. The data stream carries the bytes
  both ways; a failure is written as text on the error stream. kubectl 1.31+ tunnels this SPDY byte stream
  through a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`, raw bytes in binary messages); older ones
  upgrade the HTTP connection itself (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`).
- WebSocket `v4.channel.k8s.io` (the Python client): the ports come in the query; port i gets data channel
  2i and error channel 2i+1, and each channel's first message is the port as 2 little-endian bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import WSMsgType, web

from shim.kubelet.spdy import RST_REFUSED_STREAM, SpdySession, SpdyStream
from shim.kubelet.streams import (
    MAX_WEBSOCKET_MESSAGE,
    V4_PROTOCOL,
    accept_spdy,
    is_websocket,
    negotiate,
    offered_websocket_protocols,
)

SPDY_TUNNEL_WEBSOCKET = "SPDY/3.1+portforward.k8s.io"
SPDY_PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
CHUNK = 64 * 1024

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def serve_port_forward(request: web.Request, dial: Dial, describe: str) -> web.StreamResponse:
    """Upgrade the request and forward connections with `dial(port)`; `describe` names the pod in errors."""
    if is_websocket(request):
        offered = offered_websocket_protocols(request)
        # no subprotocol at all is the channel protocol too, as in kubelet
        protocol = negotiate(offered, (SPDY_TUNNEL_WEBSOCKET, V4_PROTOCOL)) or ("" if not offered else None)
        if protocol is None:
            return web.Response(status=400, text="unable to upgrade: no supported port-forward protocol offered")
        ports = _query_ports(request)
        if protocol != SPDY_TUNNEL_WEBSOCKET and isinstance(ports, str):
            return web.Response(status=400, text=ports)
        ws = web.WebSocketResponse(
            protocols=(protocol,) if protocol else (),
            max_msg_size=MAX_WEBSOCKET_MESSAGE,
            compress=False,
            decode_text=False,
        )
        await ws.prepare(request)
        if protocol == SPDY_TUNNEL_WEBSOCKET:
            session = SpdySession(ws.send_bytes, _binary_messages(ws))
            try:
                await forward_spdy(session, dial, describe)
            finally:
                await session.close()
                await ws.close()
        else:
            assert isinstance(ports, list)
            await forward_channels(ws, ports, dial, describe)
        return ws
    upgrade = await accept_spdy(request, (SPDY_PORT_FORWARD_PROTOCOL,))
    if isinstance(upgrade, web.Response):
        return upgrade
    session, response = upgrade
    try:
        await forward_spdy(session, dial, describe)
    finally:
        await session.close()
    return response


async def forward_spdy(session: SpdySession, dial: Dial, describe: str) -> None:
    """Pair the client's error/data streams by request id and forward each pair, until the session ends."""
    pending: dict[str, dict[str, SpdyStream]] = {}
    forwards: set[asyncio.Task[None]] = set()
    try:
        while (stream := await session.accept()) is not None:
            kind, port = stream.headers.get("streamtype"), _port(stream.headers.get("port", ""))
            if kind not in ("error", "data") or port is None:
                await stream.abort(RST_REFUSED_STREAM)
                continue
            await stream.reply()
            request_id = _request_id(stream, kind)
            pair = pending.setdefault(request_id, {})
            if kind in pair:
                await _report(pair.get("error") or stream, f"{kind} stream already assigned")
                continue
            pair[kind] = stream
            if len(pair) == 2:
                del pending[request_id]
                task = asyncio.create_task(_forward_pair(pair["data"], pair["error"], port, dial, describe))
                forwards.add(task)
                task.add_done_callback(forwards.discard)
        # after a GOAWAY the connections already forwarded carry on, as with spdystream
        await asyncio.gather(*forwards, return_exceptions=True)
    finally:
        for task in forwards:
            task.cancel()
        await asyncio.gather(*forwards, return_exceptions=True)


async def forward_channels(ws: web.WebSocketResponse, ports: list[int], dial: Dial, describe: str) -> None:
    """The channel form: one connection per requested port; over when the client leaves or every port closed."""
    for index, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await ws.send_bytes(bytes((2 * index,)) + prefix)
        await ws.send_bytes(bytes((2 * index + 1,)) + prefix)
    dialled = await asyncio.gather(*(_dial_channel(ws, i, port, dial, describe) for i, port in enumerate(ports)))
    connections = {index: connection for index, connection in enumerate(dialled) if connection is not None}
    downstream = asyncio.gather(
        *(_copy_to_channel(reader, ws, 2 * index) for index, (reader, _) in connections.items())
    )
    upstream = asyncio.create_task(_copy_from_channels(ws, connections))
    try:
        if connections:
            await asyncio.wait((upstream, downstream), return_when=asyncio.FIRST_COMPLETED)
    finally:
        upstream.cancel()
        downstream.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        for _, writer in connections.values():
            writer.close()
        await ws.close()


async def _forward_pair(data: SpdyStream, error: SpdyStream, port: int, dial: Dial, describe: str) -> None:
    try:
        reader, writer = await dial(port)
    except OSError as exc:
        await _report(error, _failure(port, describe, exc))
        await data.close()
        return
    upstream = asyncio.create_task(_copy_from_stream(data, writer))
    downstream = asyncio.create_task(_copy_to_stream(reader, data))
    aborted = asyncio.create_task(data.reset.wait())
    try:
        # done when the pod's side ends (its EOF) or the client aborts; a client half-close only ends upstream
        await asyncio.wait((downstream, aborted), return_when=asyncio.FIRST_COMPLETED)
        await data.close()
        await error.close()
    finally:
        for task in (upstream, downstream, aborted):
            task.cancel()
        await asyncio.gather(upstream, downstream, aborted, return_exceptions=True)
        writer.close()


async def _copy_from_stream(stream: SpdyStream, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await stream.read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _copy_to_stream(reader: asyncio.StreamReader, stream: SpdyStream) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(CHUNK):
            await stream.write(data)


async def _copy_from_channels(
    ws: web.WebSocketResponse, connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]]
) -> None:
    with contextlib.suppress(ConnectionError):
        async for message in ws:
            if message.type != WSMsgType.BINARY or not message.data or message.data[0] % 2:
                continue
            connection = connections.get(message.data[0] // 2)
            if connection is not None:
                connection[1].write(message.data[1:])
                await connection[1].drain()


async def _copy_to_channel(reader: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(CHUNK):
            await ws.send_bytes(bytes((channel,)) + data)


async def _dial_channel(
    ws: web.WebSocketResponse, index: int, port: int, dial: Dial, describe: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await dial(port)
    except OSError as exc:
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(bytes((2 * index + 1,)) + _failure(port, describe, exc).encode())
        return None


async def _report(error: SpdyStream, message: str) -> None:
    with contextlib.suppress(ConnectionError):
        await error.write(message.encode())
        await error.close()


async def _binary_messages(ws: web.WebSocketResponse) -> AsyncIterator[bytes]:
    async for message in ws:
        if message.type == WSMsgType.BINARY:
            yield message.data


def _failure(port: int, describe: str, exc: OSError) -> str:
    return f"error forwarding port {port} to pod {describe}: {exc.strerror or exc}"


def _request_id(stream: SpdyStream, kind: str) -> str:
    """The `requestid` header; clients older than it pair streams by id (error n, data n+2), as kubelet guesses."""
    request_id = stream.headers.get("requestid")
    if request_id:
        return request_id
    return str(stream.id if kind == "error" else stream.id - 2)


def _port(text: str) -> int | None:
    try:
        port = int(text)
    except ValueError:
        return None
    return port if 0 < port < 65536 else None


def _query_ports(request: web.Request) -> list[int] | str:
    """`port=80,8080` (or repeated) from the node URL; the error text when absent or invalid."""
    values = request.query.getall("port", [])
    if not values:
        return 'query parameter "port" is required'
    ports = []
    for value in values:
        for text in value.split(","):
            port = _port(text)
            if port is None:
                return f'unable to parse "{value}" as a port'
            ports.append(port)
    return ports
