"""Exponential back-off per key, with the semantics of client-go's flowcontrol.Backoff that kubelet uses for
container restarts (CrashLoopBackOff) and image pulls (ImagePullBackOff): 10 s doubling to 5 min, forgotten
once nothing has happened to the key for twice the maximum (so a container that ran 10 min starts over)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Times are wall-clock seconds (container finish times come from the runtime as timestamps)."""

    def __init__(self, initial: float = 10.0, maximum: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        """Whether less than the current delay has passed since `event_time` (e.g. the container's exit)."""
        return self.remaining_since(key, event_time) > 0

    def remaining_since(self, key: str, event_time: float) -> float:
        entry = self._entries.get(key)
        if entry is None or self._expired(event_time, entry):
            return 0.0
        return max(entry.delay - (self.clock() - event_time), 0.0)

    def in_backoff_since_update(self, key: str) -> bool:
        """Whether less than the current delay has passed since the last `next` (image pulls)."""
        return self.remaining_since_update(key) > 0

    def remaining_since_update(self, key: str) -> float:
        entry = self._entries.get(key)
        return max(entry.delay - (self.clock() - entry.last_update), 0.0) if entry else 0.0

    def next(self, key: str, event_time: float | None = None) -> None:
        """Record one more failure: the first (or the first after a long quiet spell) starts at `initial`."""
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or self._expired(now if event_time is None else event_time, entry):
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = now

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def _expired(self, when: float, entry: _Entry) -> bool:
        return when - entry.last_update > 2 * self.maximum


def go_duration(seconds: float) -> str:
    """A duration as Go prints it in kubelet's messages: 500ms, 10s, 1m20s, 5m0s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:g}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"
