"""A memory-investigation hook: with `KUBE_SHIM_TRACEMALLOC=PATH` set, `kube-shim up` traces its allocations
(25 frames each) from the moment it serves, and writes a tracemalloc snapshot to PATH.1, PATH.2, ... on each
SIGUSR2. Two snapshots taken minutes apart, diffed by traceback, show what grew and who allocated it:

    new, old = tracemalloc.Snapshot.load("PATH.2"), tracemalloc.Snapshot.load("PATH.1")
    for stat in new.compare_to(old, "traceback")[:10]:
        print(stat, *stat.traceback.format(), sep="\\n")

Tracing makes the server several times slower; it is off unless the variable is set.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import tracemalloc
from types import FrameType

ENVIRONMENT_VARIABLE = "KUBE_SHIM_TRACEMALLOC"
FRAMES = 25

log = logging.getLogger(__name__)


def install_from_environment() -> None:
    """Start tracing and dump a snapshot on each SIGUSR2, when `KUBE_SHIM_TRACEMALLOC` names a path."""
    prefix = os.environ.get(ENVIRONMENT_VARIABLE)
    if not prefix:
        return
    numbers = itertools.count(1)

    def dump(signum: int, frame: FrameType | None) -> None:
        path = f"{prefix}.{next(numbers)}"
        try:
            tracemalloc.take_snapshot().dump(path)
        except OSError as exc:  # a debugging aid must not take the server down
            log.error("tracemalloc snapshot not written to %s: %s", path, exc)
        else:
            log.warning("tracemalloc snapshot written to %s", path)

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR2, dump)
    log.warning("tracing allocations (%s): SIGUSR2 writes a snapshot to %s.N", ENVIRONMENT_VARIABLE, prefix)
