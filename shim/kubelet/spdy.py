"""SPDY/3.1 framing and the server end of a session, as Kubernetes' streaming endpoints speak it.

The client (kubectl, through moby/spdystream) opens every stream: SYN_STREAM with headers such as
`streamtype`, then it waits for our SYN_REPLY before it sends DATA. Either side half-closes a stream with a
FIN flag, aborts it with RST_STREAM, and ends the session with GOAWAY. Header blocks are zlib-compressed with
the SPDY/3 dictionary, one compression context per direction for the whole session, so every header block
must be inflated in order even when it is ignored. spdystream implements no flow control (it ignores
WINDOW_UPDATE and SETTINGS), so this does not either: a stream's unread data is bounded instead, and the
session stops reading the connection (TCP pushes back) while a stream's buffer is full, as spdystream blocks.
Everything a client can make grow is bounded: header blocks after inflation, open streams, buffered data.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_REFUSED_STREAM, RST_CANCEL = 1, 3, 5
GOAWAY_OK = 0
# frames we write stay small so one busy stream cannot hold the connection for long
MAX_DATA_FRAME = 32 * 1024
MAX_HEADER_BLOCK = 64 * 1024  # inflated bytes of one header block (a few compressed bytes can inflate to GiBs)
MAX_STREAMS = 256  # streams open at once in one session; more are refused
MAX_STREAM_BUFFER = 1024 * 1024  # unread bytes one stream holds before the session stops reading

Send = Callable[[bytes], Awaitable[None]]


def _spdy3_dictionary() -> bytes:
    """The zlib preset dictionary of SPDY/3 (draft 3, section 2.6.10.1): 1423 bytes, adler32 0xe3c6a7c2."""
    # fmt: off
    words = (
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
        "content-base", "content-encoding", "content-language", "content-length", "content-location",
        "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
        "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
        "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
        "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public",
        "set-cookie", "keep-alive", "origin",
    )
    # fmt: on
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
        "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return b"".join(struct.pack(">I", len(word)) + word.encode() for word in words) + tail.encode()


DICTIONARY = _spdy3_dictionary()


class SpdyProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


class SpdyStream:
    """One stream the client opened: its headers, the data it sends, and our half of the stream."""

    def __init__(self, session: SpdySession, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reset = asyncio.Event()  # set when either side aborted the stream or the session ended
        self._chunks: deque[bytes] = deque()
        self._buffered = 0  # bytes in _chunks
        self._readable = asyncio.Event()  # data arrived or the stream ended (one reader waits on it)
        self._writable = asyncio.Event()  # the buffer drained below its bound (the session's reader waits on it)
        self._fin_received = False
        self._local_done = False

    async def read(self) -> bytes:
        """The next chunk the client sent; b"" once it half-closed the stream (or it was reset)."""
        while not self._chunks:
            if self._fin_received or self.reset.is_set():
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        self._writable.set()
        return chunk

    async def reply(self) -> None:
        """Accept the stream (SYN_REPLY, no headers, as kubelet's); the client sends nothing before this."""
        await self.session._send_reply(self.id)

    async def write(self, data: bytes) -> None:
        """Send data on the stream; silently dropped once the stream is finished or reset."""
        for start in range(0, len(data), MAX_DATA_FRAME):
            if self._local_done or self.reset.is_set():
                return
            await self.session._send_data(self.id, 0, data[start : start + MAX_DATA_FRAME])

    async def close(self) -> None:
        """Half-close our side (an empty DATA frame with FIN), once."""
        if self._local_done or self.reset.is_set():
            return
        self._local_done = True
        await self.session._send_data(self.id, FLAG_FIN, b"")
        self.session._forget_if_finished(self)

    async def abort(self, status: int = RST_CANCEL) -> None:
        """RST_STREAM: both halves end at once."""
        if not self.reset.is_set():
            self._mark_reset()
            await self.session._send_control(RST_STREAM, 0, struct.pack(">II", self.id, status))

    async def _receive(self, data: bytes, fin: bool) -> None:
        """Buffer what the client sent, first waiting while the buffer is full (the reader is slow)."""
        while data and self._buffered >= MAX_STREAM_BUFFER and not self.reset.is_set():
            self._writable.clear()
            await self._writable.wait()
        if self.reset.is_set() or self._fin_received:
            return
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
        if fin:
            self._fin_received = True
            self.session._forget_if_finished(self)
        self._readable.set()

    def _mark_reset(self) -> None:
        self.reset.set()
        self._readable.set()
        self._writable.set()


class SpdySession:
    """The server end of one SPDY connection: reads `chunks` (the bytes that arrive) until they end, hands out
    the client's streams through `accept`, writes frames with `send`."""

    def __init__(self, send: Send, chunks: AsyncIterable[bytes]) -> None:
        self._send = send
        self._write_lock = asyncio.Lock()  # header compression state must follow the order frames hit the wire
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._buffer = bytearray()
        self._streams: dict[int, SpdyStream] = {}
        self._accepted: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._last_stream_id = 0
        self.ended = asyncio.Event()  # the connection closed or the client sent GOAWAY
        self._reader = asyncio.create_task(self._run(chunks))

    async def close(self) -> None:
        """Stop reading; every stream still open is reset. The caller closes the connection."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def _run(self, chunks: AsyncIterable[bytes]) -> None:
        try:
            async for chunk in chunks:
                self._buffer += chunk
                while (frame := _take_frame(self._buffer)) is not None:
                    await self._dispatch(*frame)
        except (SpdyProtocolError, struct.error, ConnectionError):
            pass  # a broken session ends like a closed one: every stream learns it through `reset`
        finally:
            self._end()

    async def accept(self) -> SpdyStream | None:
        """The next stream the client opened (not yet replied to); None once the session is over."""
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)  # every later caller learns it too
        return stream

    async def go_away(self) -> None:
        """Tell the client no more streams will be accepted."""
        with contextlib.suppress(ConnectionError):
            await self._send_control(GOAWAY, 0, struct.pack(">II", self._last_stream_id, GOAWAY_OK))

    # -- receiving ---------------------------------------------------------------------------------------------

    async def _dispatch(self, control: bool, kind: int, flags: int, payload: bytes) -> None:
        if not control:
            stream = self._streams.get(kind)
            if stream is not None:
                await stream._receive(payload, bool(flags & FLAG_FIN))
            return
        if kind == SYN_STREAM:
            await self._open_stream(flags, payload)
        elif kind in (SYN_REPLY, HEADERS):
            self._headers(payload[4:])  # never expected from a client, but the inflate context must advance
        elif kind == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            stream = self._streams.pop(stream_id & 0x7FFFFFFF, None)
            if stream is not None:
                stream._mark_reset()
        elif kind == PING:
            (ping_id,) = struct.unpack_from(">I", payload)
            if ping_id % 2 == 1:  # odd ids are the client's own pings: echo them; even ones would be answers
                await self._send_control(PING, 0, payload[:4])
        elif kind == GOAWAY:
            self._accepted.put_nowait(None)
            self.ended.set()

    async def _open_stream(self, flags: int, payload: bytes) -> None:
        if len(payload) < 10:
            raise SpdyProtocolError("short SYN_STREAM frame")
        (stream_id,) = struct.unpack_from(">I", payload)
        stream_id &= 0x7FFFFFFF
        headers = self._headers(payload[10:])
        if stream_id % 2 == 0 or stream_id <= self._last_stream_id:
            await self._send_control(RST_STREAM, 0, struct.pack(">II", stream_id, RST_PROTOCOL_ERROR))
            return
        if len(self._streams) >= MAX_STREAMS:
            self._last_stream_id = stream_id
            await self._send_control(RST_STREAM, 0, struct.pack(">II", stream_id, RST_REFUSED_STREAM))
            return
        self._last_stream_id = stream_id
        stream = SpdyStream(self, stream_id, headers)
        self._streams[stream_id] = stream
        if flags & FLAG_FIN:
            await stream._receive(b"", fin=True)
        self._accepted.put_nowait(stream)

    def _forget_if_finished(self, stream: SpdyStream) -> None:
        """Both halves closed: later frames for the stream id are ignored."""
        if stream._fin_received and stream._local_done:
            self._streams.pop(stream.id, None)

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyProtocolError(f"bad header block: {exc}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyProtocolError(f"header block inflates to more than {MAX_HEADER_BLOCK} bytes")
        return _decode_header_block(raw)

    def _end(self) -> None:
        self.ended.set()
        self._accepted.put_nowait(None)
        for stream in self._streams.values():
            stream._mark_reset()
        self._streams.clear()

    # -- sending -----------------------------------------------------------------------------------------------

    async def _send_control(self, kind: int, flags: int, payload: bytes) -> None:
        async with self._write_lock:
            await self._send(_control_frame(kind, flags, payload))

    async def _send_reply(self, stream_id: int) -> None:
        async with self._write_lock:
            no_headers = struct.pack(">I", 0)
            block = self._deflate.compress(no_headers) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self._send(_control_frame(SYN_REPLY, 0, struct.pack(">I", stream_id) + block))

    async def _send_data(self, stream_id: int, flags: int, data: bytes) -> None:
        async with self._write_lock:
            await self._send(struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data)


def _take_frame(buffer: bytearray) -> tuple[bool, int, int, bytes] | None:
    """Remove one whole frame from the front of `buffer`: (is control, type or stream id, flags, payload)."""
    if len(buffer) < 8:
        return None
    first, second = struct.unpack_from(">II", buffer)
    length = second & 0xFFFFFF
    if len(buffer) < 8 + length:
        return None
    payload = bytes(buffer[8 : 8 + length])
    del buffer[: 8 + length]
    control = bool(first & 0x80000000)
    if control and (first >> 16) & 0x7FFF != VERSION:
        raise SpdyProtocolError(f"unsupported SPDY version {(first >> 16) & 0x7FFF}")
    kind = first & 0xFFFF if control else first & 0x7FFFFFFF
    return control, kind, second >> 24, payload


def _control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def _decode_header_block(raw: bytes) -> dict[str, str]:
    """Name/value pairs; a value holding several NUL-separated values keeps the first, as http.Header.Get does."""
    try:
        (count,) = struct.unpack_from(">I", raw)
        offset = 4
        headers: dict[str, str] = {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4 : offset + 4 + size].decode().lower()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            headers.setdefault(name, value.split("\0")[0])
        return headers
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyProtocolError(f"bad header block: {exc}") from None
