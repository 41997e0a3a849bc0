"""The asyncio half of the Podman API, spoken over the unix socket.

podman-py covers the quick request/response calls (in threads). What would hold a thread for long, or must
not queue behind other calls, is spoken here: the event stream (chunked JSON lines that never end), stops
and waits (as long as a grace period), and exec/attach, where Podman hijacks the HTTP connection and it
becomes a raw duplex byte stream (stdin in; stdout/stderr out, multiplexed with 8-byte frame headers unless
a TTY merges them), together with the exec create/inspect/resize calls that belong to it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from shim.runtime.base import ExecSession, RuntimeFailure
from shim.streaming.http1 import parse_response_head

STDOUT, STDERR = 1, 2
HEAD_LIMIT = 64 * 1024


class PodmanApiError(RuntimeFailure):
    """Podman answered with an error status (the status and Podman's message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__("RuntimeError", f"podman: HTTP {status}: {message}")
        self.status = status


class PodmanStreams:
    """Async requests to one Podman service socket (`prefix` is the API path, e.g. /v5.8.0/libpod)."""

    def __init__(self, socket_path: str, prefix: str) -> None:
        self.socket_path = socket_path
        self.prefix = prefix.rstrip("/")

    async def call(
        self, method: str, path: str, query: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        """One request; returns the decoded JSON body (None if empty). Raises PodmanApiError on 4xx/5xx."""
        reader, writer, headers = await self._request(method, path, query, body, upgrade=False)
        try:
            payload = b"".join([chunk async for chunk in _body(reader, headers)])
        finally:
            writer.close()
        return json.loads(payload) if payload.strip() else None

    async def json_lines(self, path: str, query: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """GET a stream of JSON objects; returns (once the response head has arrived) their iterator."""
        reader, writer, _ = await self._request("GET", path, query, None, upgrade=False)
        return _json_lines(reader, writer)

    async def hijack(
        self, path: str, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST with `Upgrade: tcp`; returns the connection, which now carries the process's streams."""
        reader, writer, _ = await self._request("POST", path, query, body, upgrade=True)
        return reader, writer

    async def _request(
        self, method: str, path: str, query: dict[str, str] | None, body: dict[str, Any] | None, *, upgrade: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Mapping[str, str]]:
        reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=HEAD_LIMIT)
        try:
            payload = json.dumps(body).encode() if body is not None else b""
            target = f"{self.prefix}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
            head = [f"{method} {target} HTTP/1.1", "Host: podman", f"Content-Length: {len(payload)}"]
            if body is not None:
                head.append("Content-Type: application/json")
            head += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            status, headers = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
            if status >= 400:
                raise PodmanApiError(status, _error_message(b"".join([c async for c in _body(reader, headers)])))
        except BaseException:
            writer.close()
            raise
        return reader, writer, headers


class PodmanExecSession(ExecSession):
    """An exec or attach stream: the hijacked connection plus how to resize and how to learn the exit code."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tty: bool,
        exit_code: Callable[[], Awaitable[int]],
        resize: Callable[[int, int], Awaitable[None]],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._tty = tty
        self._exit_code = exit_code
        self._resize = resize

    async def write_stdin(self, data: bytes) -> None:
        """Send bytes to the process's stdin."""
        self._writer.write(data)
        await self._writer.drain()

    async def close_stdin(self) -> None:
        """End of stdin (a half-close; Podman closes the process's stdin). With a TTY, EOF is the user's ^D."""
        if self._writer.can_write_eof() and not self._writer.is_closing():
            self._writer.write_eof()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, bytes) chunks until the process closes its output."""
        if self._tty:
            while chunk := await self._reader.read(65536):
                yield STDOUT, chunk
            return
        while True:
            try:
                header = await self._reader.readexactly(8)
                frame = await self._reader.readexactly(int.from_bytes(header[4:8], "big"))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            yield (STDOUT if header[0] == STDOUT else STDERR), frame

    async def resize(self, width: int, height: int) -> None:
        """Set the TTY size (ignored without a TTY)."""
        if self._tty:
            await self._resize(width, height)

    async def wait(self) -> int:
        """The exit code, once the output has ended."""
        return await self._exit_code()

    async def close(self) -> None:
        """Drop the connection; the process itself is not signalled."""
        self._writer.close()


async def _json_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> AsyncIterator[dict[str, Any]]:
    """Decode a chunked body of newline-separated JSON objects; ends when the server ends the body."""
    pending = b""
    try:
        async for chunk in _chunks(reader):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


async def _body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> AsyncIterator[bytes]:
    """A response body: chunked, sized, or (with `Connection: close`) up to the end of the connection."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        async for chunk in _chunks(reader):
            yield chunk
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        yield await reader.read()


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        yield (await reader.readexactly(size + 2))[:-2]


def _error_message(body: bytes) -> str:
    try:
        return json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()
