"""The volumes of a PodSpec, and the downward-API references env vars share with volumes.

Follows `ValidateVolumes` and its helpers in core/validation/validation.go for the volume types users
reach for (emptyDir, hostPath, configMap, secret, persistentVolumeClaim, downwardAPI, projected, nfs);
the others are only checked for being the one source of their volume.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from shim.apiserver.kinds.causes import Cause, duplicate, forbidden, invalid, required, unsupported
from shim.apiserver.kinds.meta import is_dns1123_label, is_qualified_name
from shim.apiserver.kinds.pod_defaults import VOLUME_SOURCES

Obj = Mapping[str, Any]

FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
_VOLUME_FIELD_PATHS = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
)
_RESOURCE_FIELD_PATHS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)


def validate_volumes(volumes: Iterable[Obj], path: str, causes: list[Cause]) -> dict[str, Obj]:
    """ValidateVolumes; returns the valid volumes by name, for the mounts to refer to."""
    valid: dict[str, Obj] = {}
    for i, volume in enumerate(volumes):
        item = f"{path}[{i}]"
        name = volume.get("name", "")
        errors = _validate_volume_source(volume, item)
        if not name:
            errors.append(required(item + ".name"))
        else:
            errors.extend(invalid(item + ".name", name, m) for m in is_dns1123_label(name))
        if name in valid:
            errors.append(duplicate(item + ".name", name))
        if errors:
            causes.extend(errors)
        else:
            valid[name] = volume
    return valid


def _validate_volume_source(volume: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    kinds = [key for key in VOLUME_SOURCES if volume.get(key) is not None]
    if not kinds:
        return [required(path, "must specify a volume type")]
    causes.extend(forbidden(f"{path}.{key}", "may not specify more than 1 volume type") for key in kinds[1:])
    kind = kinds[0]
    source = volume[kind]
    where = f"{path}.{kind}"
    required_fields = {
        "hostPath": "path",
        "secret": "secretName",
        "configMap": "name",
        "persistentVolumeClaim": "claimName",
        "nfs": "server",
        "gitRepo": "repository",
    }
    if kind in required_fields and not source.get(required_fields[kind]):
        causes.append(required(f"{where}.{required_fields[kind]}"))
    if kind == "nfs":
        if not source.get("path"):
            causes.append(required(where + ".path"))
        if not posixpath.isabs(source.get("path", "")):
            causes.append(invalid(where + ".path", source.get("path", ""), "must be an absolute path"))
    if kind == "hostPath" and source.get("path") and ".." in source["path"].split("/"):
        causes.append(invalid(where + ".path", source["path"], "must not contain '..'"))
    mode = source.get("defaultMode") if isinstance(source, Mapping) else None
    if mode is not None and not 0 <= mode <= 0o777:
        causes.append(invalid(where + ".defaultMode", mode, FILE_MODE_ERROR))
    if kind in ("secret", "configMap"):
        for j, item in enumerate(source.get("items") or ()):
            causes.extend(_validate_key_to_path(item, f"{where}.items[{j}]"))
    if kind == "downwardAPI":
        for item in source.get("items") or ():
            causes.extend(_validate_downward_api_file(item, where))
    if kind == "projected":
        causes.extend(_validate_projection(source, where))
    return causes


def _validate_key_to_path(item: Obj, path: str) -> list[Cause]:
    causes = []
    if not item.get("key"):
        causes.append(required(path + ".key"))
    target = item.get("path", "")
    if not target:
        causes.append(required(path + ".path"))
    causes.extend(_local_non_reserved_path(target, path + ".path"))
    mode = item.get("mode")
    if mode is not None and not 0 <= mode <= 0o777:
        causes.append(invalid(path + ".mode", mode, FILE_MODE_ERROR))
    return causes


def _local_non_reserved_path(target: str, path: str) -> list[Cause]:
    causes = local_descending_path(target, path)
    if target.startswith(".."):
        causes.append(invalid(path, target, "must not start with '..'"))
    return causes


def _validate_downward_api_file(item: Obj, path: str) -> list[Cause]:
    causes = []
    target = item.get("path", "")
    if not target:
        causes.append(required(path + ".path"))
    causes.extend(_local_non_reserved_path(target, path + ".path"))
    if item.get("fieldRef") is not None:
        causes.extend(validate_field_ref(item["fieldRef"], path + ".fieldRef", _VOLUME_FIELD_PATHS))
        if item.get("resourceFieldRef") is not None:
            causes.append(
                invalid(path, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously")
            )
    elif item.get("resourceFieldRef") is not None:
        causes.extend(validate_resource_field_ref(item["resourceFieldRef"], path + ".resourceFieldRef", volume=True))
    else:
        causes.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    return causes


def _validate_projection(source: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, projection in enumerate(source.get("sources") or ()):
        item = f"{path}.sources[{i}]"
        kinds = [
            k
            for k in ("secret", "configMap", "downwardAPI", "serviceAccountToken", "clusterTrustBundle")
            if projection.get(k) is not None
        ]
        if len(kinds) != 1:
            causes.append(
                forbidden(item, "may not specify more than 1 volume type per source")
                if kinds
                else required(item, "must specify exactly 1 volume type")
            )
            continue
        kind = kinds[0]
        value = projection[kind]
        if kind in ("secret", "configMap"):
            if not value.get("name"):
                causes.append(required(f"{item}.{kind}.name"))
            for j, key_path in enumerate(value.get("items") or ()):
                causes.extend(_validate_key_to_path(key_path, f"{item}.{kind}.items[{j}]"))
        elif kind == "downwardAPI":
            for file in value.get("items") or ():
                causes.extend(_validate_downward_api_file(file, f"{item}.downwardAPI"))
        elif kind == "serviceAccountToken":
            seconds = value.get("expirationSeconds", 3600)
            if seconds < 600:
                causes.append(
                    invalid(
                        f"{item}.serviceAccountToken.expirationSeconds",
                        seconds,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            elif seconds > 2**32:
                causes.append(
                    invalid(
                        f"{item}.serviceAccountToken.expirationSeconds",
                        seconds,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            if not value.get("path"):
                causes.append(required(f"{item}.serviceAccountToken.path"))
    return causes


def validate_field_ref(ref: Obj, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    api_version, field_path = ref.get("apiVersion", ""), ref.get("fieldPath", "")
    if not api_version:
        return [required(path + ".apiVersion")]
    if not field_path:
        return [required(path + ".fieldPath")]
    if api_version != "v1":
        return [
            invalid(
                path + ".fieldPath",
                field_path,
                f"error converting fieldPath: unsupported pod version: {api_version}",
            )
        ]
    base, bracket, rest = field_path.partition("[")
    if bracket:
        if base not in ("metadata.labels", "metadata.annotations") or not rest.endswith("]"):
            return [invalid(path, base, "does not support subscript")]
        key = rest[:-1].strip("'\"")
        key = key.lower() if base == "metadata.annotations" else key
        return [invalid(path, key, m) for m in is_qualified_name(key)]
    if field_path not in allowed:
        return [unsupported(path + ".fieldPath", field_path, allowed)]
    return []


def validate_resource_field_ref(ref: Obj, path: str, volume: bool) -> list[Cause]:
    resource = ref.get("resource", "")
    if volume and not ref.get("containerName"):
        return [required(path + ".containerName")]
    if not resource:
        return [required(path + ".resource")]
    if resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(("requests.hugepages-", "limits.hugepages-")):
        return [unsupported(path + ".resource", resource, _RESOURCE_FIELD_PATHS)]
    return []


def local_descending_path(target: str, path: str) -> list[Cause]:
    causes = []
    if posixpath.isabs(target):
        causes.append(invalid(path, target, "must be a relative path"))
    if ".." in target.split("/"):
        causes.append(invalid(path, target, "must not contain '..'"))
    return causes
