"""Container logs: where they live on the node and how `GET containerLogs` reads them.

Each container instance writes one file in the CRI log format (what Podman's k8s-file driver writes), one
entry per line: `<RFC 3339 timestamp, ns> <stdout|stderr> <F|P> <text>`. F ends a line; P is part of a line
longer than the runtime's buffer and the next entry continues it. The files outlive their containers, which is
what `--previous` and the logs of a crashed container need.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from multidict import MultiMapping

# how often a followed log is checked for new lines, and how often whether its container still runs
FOLLOW_POLL_SECONDS = 0.1
FOLLOW_STATE_CHECK_SECONDS = 1.0
READ_CHUNK = 64 * 1024
_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def container_log_path(data_dir: Path, pod_uid: str, container: str, restart_count: int) -> Path:
    """The log file of one container instance: `<data_dir>/pods/<uid>/logs/<container>/<restart_count>.log`.

    `restart_count` numbers the instances: 0 for the first start, one more for every restart, i.e. the pod's
    `restartCount` for that container while this instance is its newest.
    """
    return Path(data_dir) / "pods" / pod_uid / "logs" / container / f"{restart_count}.log"


class LogUnavailable(Exception):
    """The container has no log to show yet (or no previous instance); kubelet's 400 message."""


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None  # entries older than this (ns since the epoch) are skipped

    @classmethod
    def from_query(cls, query: MultiMapping[str], now: datetime | None = None) -> LogOptions:
        """The node URL's query (`follow=true`, `sinceSeconds=N`, `sinceTime=RFC3339`, ...); ValueError if bad."""
        since_ns = None
        if query.get("sinceSeconds"):
            now = now or datetime.now(UTC)
            since_ns = int(now.timestamp() * 1e9) - int(query["sinceSeconds"]) * 1_000_000_000
        elif query.get("sinceTime"):
            since_ns = timestamp_ns(query["sinceTime"].encode())
        return cls(
            follow=query.get("follow") == "true",
            previous=query.get("previous") == "true",
            timestamps=query.get("timestamps") == "true",
            tail_lines=int(query["tailLines"]) if query.get("tailLines") else None,
            limit_bytes=int(query["limitBytes"]) if query.get("limitBytes") else None,
            since_ns=since_ns,
        )


def log_instance(pod: dict[str, Any], container: str, previous: bool) -> int:
    """Which instance's file `kubectl logs [--previous]` shows, from the container's status (as kubelet decides).

    The newest instance is number `restartCount`. While it runs (or after it finished for good) `--previous`
    is the one before; while the container waits to be restarted (CrashLoopBackOff) the newest instance is
    the one that died, and both plain and `--previous` logs show it.
    """
    name = pod.get("metadata", {}).get("name", "")
    status = _container_status(pod, container)
    state = status.get("state") or {}
    last_terminated = (status.get("lastState") or {}).get("terminated")
    restart_count = int(status.get("restartCount") or 0)
    if previous:
        if not last_terminated:
            raise LogUnavailable(f'previous terminated container "{container}" in pod "{name}" not found')
        return restart_count if "waiting" in state else restart_count - 1
    if "running" in state or "terminated" in state or last_terminated:
        return restart_count
    reason = (state.get("waiting") or {}).get("reason")
    if reason == "ErrImagePull":
        raise LogUnavailable(f'container "{container}" in pod "{name}" is waiting to start: image can\'t be pulled')
    if reason == "ImagePullBackOff":
        raise LogUnavailable(
            f'container "{container}" in pod "{name}" is waiting to start: trying and failing to pull image'
        )
    if reason:
        raise LogUnavailable(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    raise LogUnavailable(f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


async def stream_log(
    path: Path,
    options: LogOptions,
    write: Callable[[bytes], Awaitable[None]],
    running: Callable[[], Awaitable[bool]],
) -> None:
    """Write the log at `path` as kubelet does; with `follow`, keep writing new entries while `running()`."""
    output = _Output(write, options)
    try:
        file = path.open("rb")
    except FileNotFoundError:
        if not options.follow:
            return
        file = await _wait_for_file(path, running)
        if file is None:
            return
    try:
        if options.tail_lines is not None:
            file.seek(_tail_offset(file, options.tail_lines))
        pending = b""
        rotated = False
        checked = asyncio.get_running_loop().time()
        while not output.full:
            chunk = file.read(READ_CHUNK)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    await output.entry(line)
                continue
            if not options.follow:
                return
            if rotated:  # the old file is read to its end: go on in the new one
                file.close()
                file, pending, rotated = path.open("rb"), b"", False
                continue
            if _replaced(path, file):  # the runtime rotated the log (containerLogMaxSize)
                rotated = True
                continue  # first what was written to the old file before it was replaced
            now = asyncio.get_running_loop().time()
            if now - checked >= FOLLOW_STATE_CHECK_SECONDS:
                checked = now
                if not await running():
                    # what the container wrote before it stopped is already on disk: one last read, then done
                    options = dataclasses.replace(options, follow=False)
                    continue
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        file.close()


def timestamp_ns(text: bytes) -> int:
    """An RFC 3339 timestamp (up to ns precision) as ns since the epoch; ValueError if malformed."""
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(f"invalid timestamp {text!r}")
    seconds, fraction, zone = match.groups()
    zone_text = "+00:00" if zone == b"Z" else zone.decode()
    moment = datetime.fromisoformat(seconds.decode() + zone_text)
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or b"0").ljust(9, b"0"))


def _format_timestamp(text: bytes) -> bytes:
    """Go's RFC3339NanoFixed, as kubelet prints `--timestamps`: always 9 digits, `Z` for UTC."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return text
    seconds, fraction, zone = match.groups()
    if zone in (b"+00:00", b"-00:00"):
        zone = b"Z"
    return seconds + b"." + (fraction or b"").ljust(9, b"0") + zone


class _Output:
    """Turns CRI entries into what the client sees, honouring timestamps, since and limitBytes."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]], options: LogOptions) -> None:
        self._write = write
        self._options = options
        self._line_start = True  # the previous entry ended its line (F), so this one starts a new line
        self._remaining = options.limit_bytes
        self.full = False

    async def entry(self, line: bytes) -> None:
        parts = line.split(b" ", 3)
        if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
            return  # not a CRI entry (a torn write, or garbage): kubelet skips it too
        stamp, tag = parts[0], parts[2]
        text = parts[3] if len(parts) == 4 else b""
        if self._options.since_ns is not None:
            try:
                if timestamp_ns(stamp) < self._options.since_ns:
                    return
            except ValueError:
                return
        complete = tag.startswith(b"F")
        data = text + b"\n" if complete else text
        if self._options.timestamps and self._line_start:
            data = _format_timestamp(stamp) + b" " + data
        self._line_start = complete
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
            self.full = self._remaining <= 0
        if data:
            await self._write(data)


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any]:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return entry
    return {}


def _tail_offset(file: Any, lines: int) -> int:
    """Where the last `lines` lines of the file start (an unterminated last line counts as a line)."""
    end = file.seek(0, os.SEEK_END)
    if lines == 0:
        return end
    file.seek(max(end - 1, 0))
    # the last line's own newline does not start a line; every newline before it does
    position = end - 1 if end and file.read(1) == b"\n" else end
    found = 0
    while position > 0:
        start = max(position - READ_CHUNK, 0)
        file.seek(start)
        block = file.read(position - start)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) != -1:
            found += 1
            if found == lines:
                return start + index + 1
        position = start
    return 0


def _replaced(path: Path, file: Any) -> bool:
    """Another file now has the log's name (rotation renames a fresh file over it)."""
    try:
        return os.stat(path).st_ino != os.fstat(file.fileno()).st_ino
    except FileNotFoundError:
        return False


async def _wait_for_file(path: Path, running: Callable[[], Awaitable[bool]]) -> Any:
    """A log file that does not exist yet (the container is starting): wait for it while the container lives."""
    loop = asyncio.get_running_loop()
    checked = loop.time()
    while True:
        try:
            return path.open("rb")
        except FileNotFoundError:
            pass
        if loop.time() - checked >= FOLLOW_STATE_CHECK_SECONDS:
            checked = loop.time()
            if not await running():
                return None
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
