"""Whether a component's long-running loops are working, for `/readyz`.

A loop reports each success and failure; a loop that has failed without a success for longer than
`unhealthy_after` seconds (an informer that cannot list, a worker that keeps crashing) is a problem the
component's readiness check reports, as kube-apiserver's `informer-sync` check does for its informers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

UNHEALTHY_AFTER = 60.0  # seconds of failure before /readyz says so (a few retries at the back-off's cap)


class LoopHealth:
    """One loop: failing since when (None while it works), and its last error."""

    def __init__(self, name: str, clock: Callable[[], float], failing: bool = False) -> None:
        self.name = name
        self._clock = clock
        self.failing_since: float | None = clock() if failing else None
        self.last_error = "not started yet" if failing else ""

    def ok(self) -> None:
        """The loop did its work (listed, watched, ran long enough)."""
        self.failing_since = None
        self.last_error = ""

    def failed(self, error: BaseException) -> bool:
        """Record a failure; True when it begins a streak (the first failure after a success)."""
        first = self.failing_since is None
        if first:
            self.failing_since = self._clock()
        self.last_error = f"{type(error).__name__}: {error}"
        return first

    def problem(self, unhealthy_after: float) -> str | None:
        """Why this loop is unhealthy, or None while it works or has failed only briefly."""
        if self.failing_since is None:
            return None
        failing_for = self._clock() - self.failing_since
        if failing_for < unhealthy_after:
            return None
        return f"{self.name}: failing for {failing_for:.0f}s ({self.last_error})"


class HealthRegistry:
    """The loops of one component (one per API client): `track()` each, `problems()` for readiness."""

    def __init__(self, unhealthy_after: float = UNHEALTHY_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        self.unhealthy_after = unhealthy_after
        self._clock = clock
        self._loops: list[LoopHealth] = []

    def track(self, name: str, failing: bool = False) -> LoopHealth:
        """A new loop to watch; `failing=True` for one that must first succeed (an informer's first list)."""
        loop = LoopHealth(name, self._clock, failing)
        self._loops.append(loop)
        return loop

    def untrack(self, loop: LoopHealth) -> None:
        """The loop was stopped on purpose: it no longer counts."""
        if loop in self._loops:
            self._loops.remove(loop)

    def problems(self) -> list[str]:
        """Every tracked loop that has been failing for too long, described."""
        return [p for loop in self._loops if (p := loop.problem(self.unhealthy_after)) is not None]
