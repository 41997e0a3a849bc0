"""Controller expectations: the creations and deletions a controller made but has not yet seen in its cache.

Follows `pkg/controller/controller_utils.go` (`ControllerExpectations`, `UIDTrackingControllerExpectations`):
while a controller still waits for the informer to show what it just did, it must not act on the stale
cache again, or a burst of pod events would make it create (or delete) the same replicas twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0  # kube's ExpectationsTimeout: a lost watch event must not wedge a controller


@dataclass
class _Pending:
    creations: int = 0
    deletions: set[str] = field(default_factory=set)  # keys of the pods being deleted
    since: float = field(default_factory=time.monotonic)


class Expectations:
    """Per controller key (`namespace/name`): creations still to observe and pod keys still to see deleted."""

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.timeout = timeout
        self._pending: dict[str, _Pending] = {}

    def satisfied(self, key: str) -> bool:
        """True when everything expected was observed, nothing was expected, or the expectation expired."""
        pending = self._pending.get(key)
        if pending is None:
            return True
        if pending.creations <= 0 and not pending.deletions:
            return True
        return time.monotonic() - pending.since > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        """About to create `count` objects (replaces whatever was expected before)."""
        self._pending[key] = _Pending(creations=count)

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        """About to delete these pods (replaces whatever was expected before)."""
        self._pending[key] = _Pending(deletions=set(pod_keys))

    def expect(self, key: str, count: int, pod_keys: list[str]) -> None:
        """About to create `count` objects and delete these pods in one go (replaces what was expected before)."""
        self._pending[key] = _Pending(creations=count, deletions=set(pod_keys))

    def creation_observed(self, key: str) -> None:
        """One expected creation appeared in the cache (or will never happen: its request failed)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.creations -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """A pod this controller deleted is gone or terminating (or its delete request failed)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.deletions.discard(pod_key)

    def forget(self, key: str) -> None:
        """The controller object is gone: drop what was expected of it."""
        self._pending.pop(key, None)
