"""The remote-command wire protocols of exec and attach (the raw HTTP upgrade is `shim.streaming.upgrade`).

Two transports carry the same five streams (stdin, stdout, stderr, error, resize):
- WebSocket `v5.channel.k8s.io` / `v4.channel.k8s.io` (kubectl >= 1.30, the Python client): every message
  starts with its channel byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v5 adds `255 <channel>` to
  close one channel (kubectl closes stdin that way). The Python client sends TEXT frames, so both kinds count.
- SPDY/3.1 after `Upgrade: SPDY/3.1` (kubectl 1.27-1.29, and the fallback of later ones): the client opens one
  SPDY stream per channel, told apart by the `streamtype` header; `X-Stream-Protocol-Version` picks v4/v5.
In both, the error channel ends the session with a JSON `Status`: Success, or NonZeroExitCode with an
ExitCode cause (kubectl turns it into its own exit code).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from shim.kubelet.spdy import SpdySession, SpdyStream
from shim.runtime.base import ExecSession, RuntimeFailure
from shim.streaming.upgrade import accept_upgrade

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255  # v5: `255 <channel>` closes that channel
V5_PROTOCOL = "v5.channel.k8s.io"
V4_PROTOCOL = "v4.channel.k8s.io"
# the same names version the protocol on SPDY (X-Stream-Protocol-Version); there v5 behaves as v4
SPDY_REMOTE_COMMAND_PROTOCOLS = (V5_PROTOCOL, V4_PROTOCOL)
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}
PROTOCOL_HEADER = "X-Stream-Protocol-Version"
# kubelet's --streaming-connection timeout for the client to open its streams
STREAM_CREATION_TIMEOUT = 30.0
MAX_WEBSOCKET_MESSAGE = 1024 * 1024  # kubectl and the client libraries send at most 32 KiB at a time
MAX_QUEUED_MESSAGES = 16  # stdin or resize messages read ahead of the process; then the client waits

Status = dict[str, Any]


@dataclass(frozen=True)
class CommandOptions:
    """Which streams an exec/attach wants (the node's query: `input`, `output`, `error`, `tty`, `command`)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: list[str] = field(default_factory=list)

    @classmethod
    def from_node_query(cls, query: MultiMapping[str]) -> CommandOptions:
        """Parse the node URL's query as kubelet does ("1" = on). Raises ValueError when no stream is wanted."""
        tty = query.get("tty") == "1"
        options = cls(
            stdin=query.get("input") == "1",
            stdout=query.get("output") == "1",
            stderr=query.get("error") == "1" and not tty,  # a terminal merges stderr into stdout
            tty=tty,
            command=list(query.getall("command", [])),
        )
        if not (options.stdin or options.stdout or options.stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return options


# -- statuses on the error channel ----------------------------------------------------------------------------


def success_status() -> Status:
    return {"metadata": {}, "status": "Success"}


def exit_code_status(command: list[str], exit_code: int) -> Status:
    """What kubelet reports for a command that ended non-zero; kubectl exits with the cause's code."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"[{' '.join(command)}], exit code {exit_code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }


def internal_error_status(message: str) -> Status:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


# -- serving exec / attach --------------------------------------------------------------------------------------


async def serve_remote_command(
    request: web.Request,
    options: CommandOptions,
    start: Callable[[], Awaitable[ExecSession]],
    report_exit_code: bool,
) -> web.StreamResponse:
    """Upgrade the request (WebSocket or SPDY), run `start()`'s process over it, end with its Status.

    `report_exit_code` is False for attach, whose end is Success whatever the process did, as kubelet's.
    """
    if is_websocket(request):
        protocol = negotiate(offered_websocket_protocols(request), (V5_PROTOCOL, V4_PROTOCOL))
        if protocol is None:
            return web.Response(status=400, text="unable to upgrade: no supported channel protocol offered")
        ws = web.WebSocketResponse(
            protocols=(protocol,), max_msg_size=MAX_WEBSOCKET_MESSAGE, compress=False, decode_text=False
        )
        await ws.prepare(request)
        await run_remote_command(WebSocketChannels(ws, protocol == V5_PROTOCOL), options, start, report_exit_code)
        return ws
    upgrade = await accept_spdy(request, SPDY_REMOTE_COMMAND_PROTOCOLS)
    if isinstance(upgrade, web.Response):
        return upgrade
    session, response = upgrade
    try:
        channels = await SpdyChannels.open(session, options)
        await run_remote_command(channels, options, start, report_exit_code)
    except TimeoutError:
        pass  # kubelet gives up on a client that never opens its streams
    finally:
        await session.close()
    return response


async def run_remote_command(
    channels: CommandChannels,
    options: CommandOptions,
    start: Callable[[], Awaitable[ExecSession]],
    report_exit_code: bool,
) -> None:
    """Pump stdin/resize in and stdout/stderr out until the process ends, then send its Status."""
    try:
        process = await start()
    except RuntimeFailure as exc:
        await channels.finish(internal_error_status(f"error executing command in container: {exc.message}"))
        return
    pumps = []
    if options.stdin:
        pumps.append(asyncio.create_task(_feed_stdin(channels, process)))
    if options.tty:
        pumps.append(asyncio.create_task(_feed_resizes(channels, process)))
    output = asyncio.create_task(_copy_output(channels, options, process))
    gone = asyncio.create_task(channels.closed.wait())
    try:
        await asyncio.wait((output, gone), return_when=asyncio.FIRST_COMPLETED)
        if not output.done():
            return  # the client left; nobody is there to tell how the process ended
        output.result()
        exit_code = await process.wait()
        failed = report_exit_code and exit_code != 0
        await channels.finish(exit_code_status(options.command, exit_code) if failed else success_status())
    finally:
        for task in (*pumps, output, gone):
            task.cancel()
        await asyncio.gather(*pumps, output, gone, return_exceptions=True)


async def _feed_stdin(channels: CommandChannels, process: ExecSession) -> None:
    async for data in channels.stdin():
        await process.write_stdin(data)
    await process.close_stdin()


async def _feed_resizes(channels: CommandChannels, process: ExecSession) -> None:
    async for width, height in channels.resizes():
        await process.resize(width, height)


async def _copy_output(channels: CommandChannels, options: CommandOptions, process: ExecSession) -> None:
    async for stream, data in process.output():
        if options.tty or stream == STDOUT:
            if options.stdout:
                await channels.send(STDOUT, data)
        elif options.stderr:
            await channels.send(STDERR, data)


class CommandChannels(abc.ABC):
    """The client's side of a remote command, whatever the transport."""

    closed: asyncio.Event  # the client went away

    @abc.abstractmethod
    def stdin(self) -> AsyncIterator[bytes]:
        """What the client types, until it closes stdin or leaves."""

    @abc.abstractmethod
    def resizes(self) -> AsyncIterator[tuple[int, int]]:
        """Terminal sizes (width, height) as the client's window changes."""

    @abc.abstractmethod
    async def send(self, channel: int, data: bytes) -> None:
        """Output for stdout or stderr."""

    @abc.abstractmethod
    async def finish(self, status: Status) -> None:
        """Report how the command ended and close the session."""


class WebSocketChannels(CommandChannels):
    """The channel protocol over one WebSocket: a channel byte in front of every message."""

    def __init__(self, ws: web.WebSocketResponse, close_signal: bool) -> None:
        self._ws = ws
        self._close_signal = close_signal
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        self._resizes: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def stdin(self) -> AsyncIterator[bytes]:
        while (data := await self._stdin.get()) is not None:
            yield data

    async def resizes(self) -> AsyncIterator[tuple[int, int]]:
        while (data := await self._resizes.get()) is not None:
            for size in _split_json_objects(data)[0]:
                yield size

    async def send(self, channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await self._ws.send_bytes(bytes((channel,)) + data)

    async def finish(self, status: Status) -> None:
        with contextlib.suppress(ConnectionError):
            await self._ws.send_bytes(bytes((ERROR,)) + json.dumps(status).encode())
            await self._ws.close()
        self._reader.cancel()

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT) or not message.data:
                    continue
                channel, payload = message.data[0], bytes(message.data[1:])
                # awaiting a full queue stops reading the socket: the client waits for the process
                if channel == CLOSE_SIGNAL and self._close_signal:
                    if payload[:1] == bytes((STDIN,)):
                        await self._stdin.put(None)
                elif channel == STDIN and payload:
                    await self._stdin.put(payload)
                elif channel == RESIZE:
                    await self._resizes.put(payload)
        finally:
            self.closed.set()
            _end_now(self._stdin)
            _end_now(self._resizes)


class SpdyChannels(CommandChannels):
    """The channel protocol over SPDY: one stream per channel, named by its `streamtype` header."""

    def __init__(self, session: SpdySession, streams: dict[int, SpdyStream]) -> None:
        self._session = session
        self._streams = streams
        self.closed = session.ended

    @classmethod
    async def open(cls, session: SpdySession, options: CommandOptions) -> SpdyChannels:
        """Accept the client's streams until all the options call for are there (TimeoutError after 30 s)."""
        wanted = 1 + options.stdin + options.stdout + options.stderr + options.tty
        streams: dict[int, SpdyStream] = {}
        async with asyncio.timeout(STREAM_CREATION_TIMEOUT):
            while len(streams) < wanted:
                stream = await session.accept()
                if stream is None:
                    raise TimeoutError("the client left before opening its streams")
                channel = STREAM_TYPES.get(stream.headers.get("streamtype", ""))
                if channel is None:
                    await stream.abort()
                    continue
                await stream.reply()
                streams[channel] = stream
        return cls(session, streams)

    async def stdin(self) -> AsyncIterator[bytes]:
        stream = self._streams.get(STDIN)
        while stream is not None and (data := await stream.read()):
            yield data

    async def resizes(self) -> AsyncIterator[tuple[int, int]]:
        stream = self._streams.get(RESIZE)
        pending = b""
        while stream is not None and (data := await stream.read()):
            pending += data
            sizes, pending = _split_json_objects(pending)
            for size in sizes:
                yield size

    async def send(self, channel: int, data: bytes) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            with contextlib.suppress(ConnectionError):
                await stream.write(data)

    async def finish(self, status: Status) -> None:
        with contextlib.suppress(ConnectionError):
            await self._streams[ERROR].write(json.dumps(status).encode())
            for channel in (ERROR, STDOUT, STDERR):
                if channel in self._streams:
                    await self._streams[channel].close()
            await self._session.go_away()


def _end_now(queue: asyncio.Queue[bytes | None]) -> None:
    """End the queue's consumer at once: the client is gone, so what it sent that was not read yet may go."""
    while True:
        try:
            queue.put_nowait(None)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


def _split_json_objects(data: bytes) -> tuple[list[tuple[int, int]], bytes]:
    """`{"Width":80,"Height":24}` objects back to back (Go's json.Encoder adds a newline); the rest is unparsed."""
    decoder = json.JSONDecoder()
    text = data.decode(errors="replace")
    sizes: list[tuple[int, int]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return sizes, b""
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return sizes, text[position:].encode()
        if isinstance(value, dict):
            sizes.append((int(value.get("Width") or 0), int(value.get("Height") or 0)))


# -- the upgrade itself -----------------------------------------------------------------------------------------


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/")


def offered_websocket_protocols(request: web.Request) -> list[str]:
    return [p.strip() for value in request.headers.getall("Sec-WebSocket-Protocol", []) for p in value.split(",")]


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offered that we speak (the client's preference wins, as in Go's)."""
    return next((protocol for protocol in offered if protocol in supported), None)


async def accept_spdy(
    request: web.Request, supported: tuple[str, ...]
) -> tuple[SpdySession, web.StreamResponse] | web.Response:
    """Answer `Upgrade: SPDY/3.1` with 101 and start a SPDY session on the connection; or the refusal."""
    if not is_spdy(request):
        return web.Response(status=400, text="Upgrade request required")
    offered = [p.strip() for value in request.headers.getall(PROTOCOL_HEADER, []) for p in value.split(",")]
    protocol = negotiate(offered, supported)
    if protocol is None:
        # httpstream.Handshake's refusal, word for word
        return web.Response(
            status=403,
            headers={"X-Accepted-Stream-Protocol-Versions": ", ".join(supported)},
            text=f"unable to upgrade: unable to negotiate protocol: client supports {_go_list(offered)}, "
            f"server supports {_go_list(list(supported))}",
        )
    connection, response = await accept_upgrade(
        request, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", PROTOCOL_HEADER: protocol}
    )
    return SpdySession(response.write, connection), response


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"
