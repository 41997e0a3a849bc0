"""Bind mounts the node agent itself makes on the host (kubelet's volume-subpaths): mount an opened file
descriptor onto a path, and take every mount under a directory down again before the directory goes."""

from __future__ import annotations

import ctypes
import errno
import os
import re
from pathlib import Path

MS_BIND = 0x1000
MNT_DETACH = 0x2
MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")

_libc = ctypes.CDLL(None, use_errno=True)


def bind_fd(fd: int, target: Path) -> None:
    """Bind-mount what `fd` refers to onto `target` (an existing directory or file of the same kind).

    The source is the descriptor's magic link, so what is mounted is what was opened, whatever has been renamed
    or replaced along its path since."""
    source = f"/proc/self/fd/{fd}".encode()
    if _libc.mount(source, os.fsencode(target), None, MS_BIND, None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"bind mount onto {target}: {os.strerror(code)}")


def unmount_under(root: Path) -> list[str]:
    """Detach every mount at or below `root`, deepest first; the mount points that could not be detached."""
    left = []
    for point in sorted(mount_points_under(root), key=len, reverse=True):
        unmounted = _libc.umount2(os.fsencode(point), MNT_DETACH) == 0
        if not unmounted and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):  # not mounted (now): fine
            left.append(point)
    return left


def mount_points_under(root: Path) -> list[str]:
    """The mount points at or below `root` in this process's mount namespace."""
    prefix = os.path.realpath(root)
    points = []
    for line in MOUNTINFO.read_text().splitlines():
        point = _unescape(line.split(" ")[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)
