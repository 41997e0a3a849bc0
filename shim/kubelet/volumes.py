"""Pod volumes on the node: each volume is a directory under the pod's dir that containers bind-mount.

emptyDir is an empty directory; configMap, secret, downwardAPI and projected volumes are files written from
the API objects (re-written on every periodic resync, so updates reach running pods); hostPath is the host's
own path, allowed only under the node's `allowed_host_paths`; a persistentVolumeClaim is the host path of the
volume bound to it (`claims`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.kubelet.claims import ClaimNotReady, bound_volume, host_path_source, local_path_root
from shim.kubelet.downward import DownwardError, PodAddresses, field_value, resource_value
from shim.kubelet.envvars import expand
from shim.kubelet.paths import PodPaths
from shim.kubelet.refs import ReferencedObjects
from shim.kubelet.subpath import bind_sub_path
from shim.runtime.base import Mount

Obj = dict[str, Any]

DEFAULT_FILE_MODE = 0o644
_HOST_PATH_KINDS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


class MountError(Exception):
    """A volume cannot be set up (yet); `event_message` is the FailedMount event's text."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume
        self.event_message = f'MountVolume.SetUp failed for volume "{volume}" : {message}'


class ClaimMountError(MountError):
    """A claim (or its volume) is not ready: kubelet's volume manager says so before any set-up."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(volume, message)
        self.event_message = (
            f"Unable to attach or mount volumes: unmounted volumes=[{volume}], unattached volumes=[], "
            f"failed to process volumes=[{volume}]: {message}"
        )


@dataclass(frozen=True)
class PreparedVolume:
    path: Path
    read_only: bool  # configMap, secret, downwardAPI and projected volumes are always mounted read-only


async def prepare_volumes(
    pod: Obj,
    paths: PodPaths,
    refs: ReferencedObjects,
    addresses: PodAddresses,
    allocatable: dict[str, str],
    allowed_host_paths: tuple[str, ...],
) -> dict[str, PreparedVolume]:
    """Create or refresh every volume of the pod; raises MountError for the first that cannot be set up."""
    paths.create()
    prepared = {}
    for volume in pod["spec"].get("volumes") or ():
        name = volume["name"]
        if "hostPath" in volume:
            prepared[name] = PreparedVolume(_host_path(name, volume["hostPath"], allowed_host_paths), False)
            continue
        if "persistentVolumeClaim" in volume:
            prepared[name] = await _claim(name, volume["persistentVolumeClaim"], pod, paths, refs, allowed_host_paths)
            continue
        target = paths.volume(name)
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)  # emptyDir is world-writable, whatever user the containers run as
            prepared[name] = PreparedVolume(target, False)
            continue
        files = await _volume_files(pod, volume, refs, addresses, allocatable)
        _write_files(target, files)
        prepared[name] = PreparedVolume(target, True)
    return prepared


def container_mounts(
    container: Obj, volumes: dict[str, PreparedVolume], env: dict[str, str], paths: PodPaths, attempt: int
) -> list[Mount]:
    """The bind mounts of one run of a container: its volumeMounts (a subPath or subPathExpr bind-mounted onto
    the pod's volume-subpaths first) and its termination log.

    Raises ContainerConfigError for a sub-path that is invalid or leads out of its volume."""
    name = container["name"]
    mounts = []
    for index, mount in enumerate(container.get("volumeMounts") or ()):
        volume = volumes[mount["name"]]
        host = volume.path
        sub_path = mount.get("subPath") or (expand(mount["subPathExpr"], env) if mount.get("subPathExpr") else "")
        if sub_path:
            target = paths.sub_path_mount(mount["name"], name, index)
            host = bind_sub_path(volume.path, sub_path, target, mount["name"], name)
        read_only = bool(mount.get("readOnly")) or volume.read_only
        mounts.append(Mount(str(host), mount["mountPath"], read_only))
    if container.get("terminationMessagePath"):
        termination_log = paths.termination_log(name, attempt)
        termination_log.parent.mkdir(parents=True, exist_ok=True)
        termination_log.touch()
        termination_log.chmod(0o666)  # any container user may write its last words
        mounts.append(Mount(str(termination_log), container["terminationMessagePath"]))
    return mounts


# -- sources ---------------------------------------------------------------------------------------------------


async def _volume_files(
    pod: Obj, volume: Obj, refs: ReferencedObjects, addresses: PodAddresses, allocatable: dict[str, str]
) -> dict[str, tuple[bytes, int]]:
    name = volume["name"]
    if "configMap" in volume:
        source = volume["configMap"]
        mode = source.get("defaultMode", DEFAULT_FILE_MODE)
        return await _config_map(name, source.get("name", ""), source, refs, mode)
    if "secret" in volume:
        source = volume["secret"]
        mode = source.get("defaultMode", DEFAULT_FILE_MODE)
        return await _secret(name, source.get("secretName", ""), source, refs, mode)
    if "downwardAPI" in volume:
        source = volume["downwardAPI"]
        return _downward(name, source, pod, addresses, allocatable, source.get("defaultMode", DEFAULT_FILE_MODE))
    if "projected" in volume:
        source = volume["projected"]
        mode = source.get("defaultMode", DEFAULT_FILE_MODE)
        files: dict[str, tuple[bytes, int]] = {}
        for part in source.get("sources") or ():
            if "configMap" in part:
                config_map = part["configMap"]
                files.update(await _config_map(name, config_map.get("name", ""), config_map, refs, mode))
            elif "secret" in part:
                secret = part["secret"]
                files.update(await _secret(name, secret.get("name", ""), secret, refs, mode))
            elif "downwardAPI" in part:
                files.update(_downward(name, part["downwardAPI"], pod, addresses, allocatable, mode))
            # serviceAccountToken and clusterTrustBundle sources: nothing here issues them yet
        return files
    raise MountError(name, "volume type is not supported by this node")


async def _config_map(
    volume: str, name: str, source: Obj, refs: ReferencedObjects, mode: int
) -> dict[str, tuple[bytes, int]]:
    data = await refs.config_map_files(name)
    if data is None:
        if source.get("optional"):
            return {}
        raise MountError(volume, f'configmap "{name}" not found')
    return _select(volume, data, source, mode, "configmap references non-existent config key")


async def _secret(
    volume: str, name: str, source: Obj, refs: ReferencedObjects, mode: int
) -> dict[str, tuple[bytes, int]]:
    data = await refs.secret_files(name)
    if data is None:
        if source.get("optional"):
            return {}
        raise MountError(volume, f'secret "{name}" not found')
    return _select(volume, data, source, mode, "references non-existent secret key")


def _select(volume: str, data: dict[str, bytes], source: Obj, mode: int, missing: str) -> dict[str, tuple[bytes, int]]:
    """Every key as a file, or only the `items` (key -> path, mode) when listed."""
    items = source.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise MountError(volume, f"{missing}: {item['key']}")
        files[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return files


def _downward(
    volume: str, source: Obj, pod: Obj, addresses: PodAddresses, allocatable: dict[str, str], mode: int
) -> dict[str, tuple[bytes, int]]:
    files = {}
    for item in source.get("items") or ():
        try:
            if item.get("fieldRef"):
                value = field_value(pod, item["fieldRef"].get("fieldPath", ""), addresses)
            else:
                value = resource_value(item.get("resourceFieldRef") or {}, pod, None, allocatable)
        except DownwardError as exc:
            raise MountError(volume, str(exc)) from None
        files[item["path"]] = (value.encode(), item.get("mode", mode))
    return files


async def _claim(
    volume: str, source: Obj, pod: Obj, paths: PodPaths, refs: ReferencedObjects, allowed: tuple[str, ...]
) -> PreparedVolume:
    """The host directory of the volume bound to the claim: under the node's local-path storage or an allowed
    host path; read-only when the pod's volume says so."""
    try:
        bound = await bound_volume(source.get("claimName", ""), pod["metadata"]["namespace"], refs)
        host = host_path_source(bound)
    except ClaimNotReady as exc:
        raise ClaimMountError(volume, str(exc)) from None
    roots = (*allowed, str(local_path_root(paths.data_dir)))
    path = _host_path(volume, host, roots)
    # a volume's path is the host's: one that leads elsewhere through a symlink (planted by a pod that wrote
    # into an allowed directory) must not carry the pod out of the allowed roots
    resolved = Path(os.path.realpath(path))
    if not any(resolved == root or root in resolved.parents for root in map(_real, roots)):
        raise MountError(volume, f"hostPath {str(path)!r} leads outside the paths this node allows")
    return PreparedVolume(path, bool(source.get("readOnly")))


def _real(path: str) -> Path:
    return Path(os.path.realpath(path))


def _host_path(volume: str, source: Obj, allowed: tuple[str, ...]) -> Path:
    """The host path, once it is allowed and passes its `type` check (creating it for *OrCreate)."""
    path = Path(os.path.normpath(source.get("path", "/")))
    roots = [Path(os.path.normpath(root)) for root in allowed]
    if not any(path == root or root in path.parents for root in roots):
        listed = ", ".join(allowed) or "none"
        raise MountError(volume, f"hostPath {str(path)!r} is not under a path this node allows (allowed: {listed})")
    kind = source.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.touch(0o644)
    elif kind in _HOST_PATH_KINDS:
        test, what = _HOST_PATH_KINDS[kind]
        try:
            ok = test(path.stat().st_mode)
        except OSError:
            ok = False
        if not ok:
            raise MountError(volume, f"hostPath type check failed: {path} is not {what}")
    return path


def _write_files(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Make `target` hold exactly these files: each replaced atomically, and stale ones removed."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for relative, (content, mode) in files.items():
        path = (target / relative).resolve()
        if target.resolve() not in path.parents:
            continue  # validation forbids `..`; never write outside the volume anyway
        wanted.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_bytes() == content and stat.S_IMODE(path.stat().st_mode) == mode:
            continue
        scratch = path.with_name(f".{path.name}.tmp")
        scratch.write_bytes(content)
        scratch.chmod(mode)
        os.replace(scratch, path)
    for path in target.resolve().rglob("*"):
        if path.is_file() and path not in wanted:
            path.unlink()
