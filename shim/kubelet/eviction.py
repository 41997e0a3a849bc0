"""Local-storage eviction of one pod, as kubelet's eviction manager does it for `emptyDir.sizeLimit`: the
volume's disk usage is measured periodically and a pod whose emptyDir outgrew its limit is evicted."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

from shim.kubelet.paths import PodPaths
from shim.machinery.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

BLOCK = 512  # st_blocks unit


def size_limits(pod: Obj) -> dict[str, tuple[str, int]]:
    """emptyDir volume name -> (its sizeLimit as written, in bytes), for the volumes that have one."""
    limits = {}
    for volume in pod["spec"].get("volumes") or ():
        raw = (volume.get("emptyDir") or {}).get("sizeLimit")
        if raw is None:
            continue
        try:
            limits[volume["name"]] = (str(raw), math.ceil(parse_quantity(raw).value))
        except QuantityError:
            continue  # admission rejects an unparsable quantity; nothing to enforce
    return limits


def exceeded_empty_dir(paths: PodPaths, limits: dict[str, tuple[str, int]]) -> str | None:
    """The eviction message for the first emptyDir whose usage is over its limit, else None (blocking: walks
    the volumes)."""
    for name, (written, limit) in limits.items():
        if disk_usage(paths.volume(name)) > limit:
            return f'Usage of EmptyDir volume "{name}" exceeds the limit "{written}". '
    return None


def disk_usage(root: Path) -> int:
    """Bytes allocated under `root` (like `du`), never following symlinks; 0 when it does not exist."""
    total = 0
    pending = [str(root)]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue  # removed while walking, or not a directory
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += info.st_blocks * BLOCK
                if stat.S_ISDIR(info.st_mode):
                    pending.append(entry.path)
    return total
