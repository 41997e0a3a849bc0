"""The head of a raw HTTP/1.1 response, read off a socket that aiohttp does not own (an upgrade, a hijack)."""

from __future__ import annotations

from multidict import CIMultiDict


def parse_response_head(head: bytes) -> tuple[int, CIMultiDict[str]]:
    """The status code and headers (case-insensitive, repeats kept) of `HTTP/1.1 101 ...\\r\\nName: v\\r\\n\\r\\n`.

    A status line without a numeric code raises OSError, as a broken connection would: callers already turn
    those into the error they answer with.
    """
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"malformed HTTP response: {status_line!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.add(name.strip(), value.strip())
    return int(parts[1]), headers
