"""Running controllers inside the test process, against the real `kube-shim up` the tests share, and waiting
for their in-process state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol


class Controller(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def running(*controllers: Controller) -> AsyncIterator[None]:
    """Start the controllers; stop them (in reverse order) when the block ends."""
    for controller in controllers:
        controller.start()
    try:
        yield
    finally:
        for controller in reversed(controllers):
            await controller.stop()


async def eventually(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll a condition of in-process state until it holds, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
