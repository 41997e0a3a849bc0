"""OOM kills of Podman containers, read from the kernel log (/dev/kmsg).

Podman 4.3 on cgroup v1 never sets `State.OOMKilled` (podman issue #13102), so the kernel's own record is
the source: `oom-kill:...,task_memcg=/libpod_parent/<pod>/libpod-<container id>,...`. The reader starts at
the beginning of the ring buffer, so a restarted agent still learns of kills from before its start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
import threading

log = logging.getLogger("shim.runtime.oom")

KMSG = "/dev/kmsg"
OOM_RECORD = re.compile(rb"oom-kill:.*task_memcg=/.*?/libpod-([0-9a-f]{64})")


class OomWatcher:
    """Collects the ids of OOM-killed containers from a reader thread; asyncio code asks or waits."""

    def __init__(self, path: str = KMSG) -> None:
        self.path = path
        self._killed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reading in a thread; if the kernel log is unreadable, log once and report no OOM kills."""
        self._loop = asyncio.get_running_loop()
        try:
            kmsg = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            log.warning("cannot read %s (%s): OOM-killed containers will show as plain exit 137", self.path, err)
            return
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._read, args=(kmsg,), name="oom-kmsg", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reader thread."""
        if self._thread is None:
            return
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._thread = None
        os.close(self._wake_r)
        os.close(self._wake_w)

    def is_oom_killed(self, container_id: str) -> bool:
        """Whether the kernel OOM-killed a process of this container (full 64-hex id)."""
        return container_id in self._killed

    async def wait_oom_killed(self, container_id: str, timeout: float) -> bool:
        """Like `is_oom_killed`, but give the kernel record up to `timeout` seconds to arrive."""
        if container_id in self._killed or self._thread is None:
            return container_id in self._killed
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(container_id, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(container_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(container_id, None)
        return True

    def _read(self, kmsg: int) -> None:
        try:
            while True:
                ready, _, _ = select.select([kmsg, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                for container_id in _drain(kmsg):
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._record, container_id)
        finally:
            os.close(kmsg)

    def _record(self, container_id: str) -> None:
        self._killed.add(container_id)
        for waiter in self._waiters.pop(container_id, []):
            if not waiter.done():
                waiter.set_result(None)


def _drain(kmsg: int) -> list[str]:
    """Container ids of the OOM records readable now (one kernel record per read)."""
    found: list[str] = []
    while True:
        try:
            record = os.read(kmsg, 8192)
        except BlockingIOError:
            return found
        except BrokenPipeError:  # the ring buffer overwrote records we had not read yet
            continue
        if match := OOM_RECORD.search(record):
            found.append(match.group(1).decode())
