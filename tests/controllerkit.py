"""Running controllers inside the test process, against the real `kube-shim up` the tests share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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
