"""Hand the C heap's free pages back to the OS now and then.

glibc's malloc gives memory back to the OS only from the top of its heap. A server that churns connections
(a TLS handshake each), request bodies and list responses frees plenty in the middle of the heap, and its RSS
creeps up by the free pages malloc keeps: 12 MB of 120 after 7 minutes of `bench.soak`, with the memory in use
flat. `malloc_trim(0)` releases them, in about a millisecond. Without glibc this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

TRIM_INTERVAL = 60.0

log = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_malloc_trim = _find_malloc_trim()


def release_free_memory() -> bool:
    """Give the heap's free pages back to the OS; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


async def release_free_memory_periodically(interval: float = TRIM_INTERVAL) -> None:
    """Forever: every `interval` seconds, `release_free_memory()`."""
    while True:
        await asyncio.sleep(interval)
        try:
            if not release_free_memory():
                return
        except Exception:  # a failing trim must not end the loop: memory is only returned later
            log.exception("returning free memory to the OS failed")
