"""Volume sub-paths (`subPath`, `subPathExpr`) resolved inside their volume and never outside it.

A sub-path is untrusted twice over: `subPathExpr` is only known after variable expansion (so `$(X)` with X=/
passes admission), and an earlier container may have planted a symlink in a writable volume that a later
container's `subPath` names (CVE-2017-1002101). So the expanded value is validated as kubelet does (relative,
no `..` element), then walked one component at a time from the volume's root with O_NOFOLLOW, each step
opened relative to the previous one: a symlink anywhere refuses the mount, and missing directories are made in
the same walk, inside the volume. What the walk opened is then bind-mounted, through its file descriptor, onto
a path of the node agent's own (`pods/<uid>/volume-subpaths/...`) and that path is what the runtime mounts:
a container that swaps a directory for a symlink after the walk changes nothing.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from shim.kubelet.envvars import ContainerConfigError
from shim.kubelet.mounts import bind_fd, unmount_under

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ANY = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC  # a file or a symlink itself, never what it points to
MOUNT_DIR_MODE = 0o750


def validate_sub_path(sub_path: str) -> None:
    """kubelet's makeMounts checks: a sub-path is relative and has no `..` element."""
    if os.path.isabs(sub_path):
        raise ContainerConfigError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise ContainerConfigError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")


def bind_sub_path(volume: Path, sub_path: str, target: Path, mount_name: str, container: str) -> Path:
    """Resolve `sub_path` inside `volume` (a missing one is made a directory with the volume root's mode) and
    bind-mount it onto `target`, replacing what an earlier run mounted there; returns `target`. Raises
    ContainerConfigError when the sub-path is invalid or any component of it is a symlink."""
    validate_sub_path(sub_path)
    parts = [part for part in sub_path.split("/") if part not in ("", ".")]
    try:
        fd = _open_beneath(volume, parts)
        try:
            _mount_point(target, directory=stat.S_ISDIR(os.fstat(fd).st_mode))
            bind_fd(fd, target)
        finally:
            os.close(fd)
    except (OSError, _Escape) as exc:
        raise ContainerConfigError(
            f'failed to prepare subPath for volumeMount "{mount_name}" of container "{container}": {exc}'
        ) from None
    return target


class _Escape(Exception):
    """A component of the sub-path is a symlink."""


def _open_beneath(volume: Path, parts: list[str]) -> int:
    """An fd of volume/parts, opened one component at a time relative to the last."""
    fd = os.open(volume, _DIRECTORY)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        for index, part in enumerate(parts):
            fd = _step(fd, part, mode, last=index == len(parts) - 1)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(parent: int, name: str, mode: int, last: bool) -> int:
    """Open `name` under the directory fd `parent`, closing `parent` once it is open: a directory, or a regular
    file as the last component; a missing one is made a directory."""
    created = False
    try:
        child = os.open(name, _ANY, dir_fd=parent)
    except FileNotFoundError:
        os.mkdir(name, mode, dir_fd=parent)
        created = True
        child = os.open(name, _ANY, dir_fd=parent)
    try:
        kind = os.fstat(child).st_mode
        if stat.S_ISLNK(kind):
            raise _Escape(f"{name!r} is a symlink")
        if stat.S_ISDIR(kind):
            path_fd, child = child, -1
            os.close(path_fd)
            child = os.open(name, _DIRECTORY, dir_fd=parent)  # ELOOP if swapped for a symlink meanwhile
            if created:
                os.fchmod(child, mode)  # mkdir's mode went through the umask
        elif not (last and stat.S_ISREG(kind)):
            raise OSError(errno.ENOTDIR, f"{name!r} is not a directory")
    except BaseException:
        if child >= 0:
            os.close(child)
        raise
    os.close(parent)
    return child


def _mount_point(target: Path, directory: bool) -> None:
    """An empty directory or file at `target` to mount onto, after taking down an earlier run's mount."""
    if unmount_under(target):
        raise OSError(errno.EBUSY, f"{target} is still mounted")
    target.parent.mkdir(mode=MOUNT_DIR_MODE, parents=True, exist_ok=True)
    if target.is_dir() and not directory:
        target.rmdir()
    elif target.exists() and directory and not target.is_dir():
        target.unlink()
    if directory:
        target.mkdir(exist_ok=True)
    else:
        target.touch()
