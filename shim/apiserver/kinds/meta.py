"""Object metadata validation shared by every kind, and the name/label/key formats kube checks.

Follows apimachinery's `api/validation/objectmeta.go`, `util/validation/validation.go` and
`apis/meta/v1/validation`, with kube's exact messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from shim.apiserver.kinds.causes import (
    Cause,
    GoValue,
    forbidden,
    go_string_slice,
    invalid,
    required,
    too_long,
)

FIELD_IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"

_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT).fullmatch
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT).fullmatch
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT).fullmatch
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT).fullmatch
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT).fullmatch
_CONFIG_MAP_KEY = re.compile(_CONFIG_MAP_KEY_FMT).fullmatch


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """validation.RegexError, its doubled spaces before `or` included."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {listed}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


_DNS1123_LABEL_MSG = regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character",
    _DNS1123_LABEL_FMT,
    "my-name",
    "123-abc",
)
_DNS1123_SUBDOMAIN_MSG = regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character",
    _DNS1123_SUBDOMAIN_FMT,
    "example.com",
)
_DNS1035_LABEL_MSG = regex_error(
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character",
    _DNS1035_LABEL_FMT,
    "my-name",
    "abc-123",
)
_QUALIFIED_NAME_MSG = regex_error(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
    _QUALIFIED_NAME_FMT,
    "MyName",
    "my.name",
    "123-abc",
)
_LABEL_VALUE_MSG = regex_error(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character",
    _LABEL_VALUE_FMT,
    "MyValue",
    "my_value",
    "12345",
)
_CONFIG_MAP_KEY_MSG = regex_error(
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
    _CONFIG_MAP_KEY_FMT,
    "key.name",
    "KEY_NAME",
    "key-name",
)
_STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


# -- formats ---------------------------------------------------------------------------------------


def is_dns1123_label(value: str) -> list[str]:
    """validation.IsDNS1123Label."""
    if len(value) <= 63 and _DNS1123_LABEL(value):
        return []
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not _DNS1123_LABEL(value):
        errs.append("must not contain dots" if _DNS1123_SUBDOMAIN(value) else _DNS1123_LABEL_MSG)
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """validation.IsDNS1123Subdomain."""
    if len(value) <= 253 and _DNS1123_SUBDOMAIN(value):
        return []
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN(value):
        errs.append(_DNS1123_SUBDOMAIN_MSG)
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """validation.IsDNS1035Label."""
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not _DNS1035_LABEL(value):
        errs.append(_DNS1035_LABEL_MSG)
    return errs


def is_qualified_name(value: str) -> list[str]:
    """validation.IsQualifiedName: an optional DNS subdomain prefix and '/', then a name of at most 63."""
    parts = value.split("/")
    if len(parts) == 1 and 0 < len(value) <= 63 and _QUALIFIED_NAME(value):
        return []
    errs = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + _QUALIFIED_NAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(parts[0]))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME(name):
        errs.append("name part " + _QUALIFIED_NAME_MSG)
    return errs


def is_label_value(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    if len(value) <= 63 and _LABEL_VALUE(value):
        return []
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not _LABEL_VALUE(value):
        errs.append(_LABEL_VALUE_MSG)
    return errs


def is_config_map_key(value: str) -> list[str]:
    """validation.IsConfigMapKey: keys of ConfigMap/Secret data."""
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not _CONFIG_MAP_KEY(value):
        errs.append(_CONFIG_MAP_KEY_MSG)
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_path_segment_name(value: str) -> list[str]:
    """path.IsValidPathSegmentName: the rule every object name must satisfy."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in value]


# -- object names ----------------------------------------------------------------------------------


def _mask_trailing_dash(name: str) -> str:
    """A generateName prefix may end with '-' (a suffix follows)."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def _path_segment(name: str, prefix: bool) -> list[str]:
    if prefix:
        return [f"may not contain '{c}'" for c in "/%" if c in name]
    return is_path_segment_name(name)


class NameRule(Enum):
    """The `ValidateNameFunc` a kind's names follow."""

    #: NameIsDNSSubdomain: most kinds
    SUBDOMAIN = "subdomain"
    #: NameIsDNSLabel: namespaces
    LABEL = "label"
    #: NameIsDNS1035Label: services
    DNS1035_LABEL = "dns1035-label"
    #: ValidatePathSegmentName: kinds with no name rule of their own (core/v1 events)
    PATH_SEGMENT = "path-segment"

    def check(self, name: str, prefix: bool = False) -> list[str]:
        """kube's messages for a name (or, with prefix, a generateName) that breaks this rule."""
        return _NAME_CHECKS[self](name, prefix)


_NAME_CHECKS: dict[NameRule, Callable[[str, bool], list[str]]] = {
    NameRule.SUBDOMAIN: lambda n, p: is_dns1123_subdomain(_mask_trailing_dash(n) if p else n),
    NameRule.LABEL: lambda n, p: is_dns1123_label(_mask_trailing_dash(n) if p else n),
    NameRule.DNS1035_LABEL: lambda n, p: is_dns1035_label(_mask_trailing_dash(n) if p else n),
    NameRule.PATH_SEGMENT: _path_segment,
}


# -- metadata --------------------------------------------------------------------------------------


def validate_object_meta(obj: Mapping[str, Any], namespaced: bool, name_rule: NameRule) -> list[Cause]:
    """ValidateObjectMeta on create: name (by the kind's rule), namespace, labels, annotations, owners,
    finalizers. Call it for every kind, before the kind's own `validate`."""
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    generate_name = meta.get("generateName")
    if generate_name:
        causes.extend(
            invalid("metadata.generateName", generate_name, m) for m in name_rule.check(generate_name, prefix=True)
        )
    name = meta.get("name")
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    else:
        causes.extend(invalid("metadata.name", name, m) for m in name_rule.check(name))
    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            causes.append(required("metadata.namespace"))
        else:
            causes.extend(invalid("metadata.namespace", namespace, m) for m in is_dns1123_label(namespace))
    elif namespace:
        causes.append(forbidden("metadata.namespace", "not allowed on this type"))
    causes.extend(_validate_meta_common(meta))
    return causes


def validate_object_meta_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """ValidateObjectMetaUpdate: identity fields immutable, no finalizers added while deleting, then the
    formats `validate_object_meta` checks (except the name's)."""
    meta = new.get("metadata") or {}
    old_meta = old.get("metadata") or {}
    causes: list[Cause] = []
    if old_meta.get("deletionTimestamp"):
        added = sorted(set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ()))
        if added:
            causes.append(
                forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers {go_string_slice(added)}",
                )
            )
    if meta.get("generation", 0) < old_meta.get("generation", 0):
        causes.append(invalid("metadata.generation", meta.get("generation", 0), "must not be decremented"))
    for key in ("name", "namespace", "uid"):
        if meta.get(key, "") != old_meta.get(key, ""):
            causes.append(invalid(f"metadata.{key}", meta.get(key, ""), FIELD_IMMUTABLE))
    causes.extend(_validate_meta_common(meta))
    return causes


def _validate_meta_common(meta: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        causes.append(invalid("metadata.generation", generation, NEGATIVE))
    labels = meta.get("labels")
    if labels:
        causes.extend(validate_labels(labels, "metadata.labels"))
    annotations = meta.get("annotations")
    if annotations:
        causes.extend(validate_annotations(annotations, "metadata.annotations"))
    owners = meta.get("ownerReferences")
    if owners:
        causes.extend(_validate_owner_references(owners))
    finalizers = meta.get("finalizers")
    if finalizers:
        causes.extend(_validate_finalizers(finalizers))
    return causes


def validate_labels(labels: Mapping[str, str], path: str) -> list[Cause]:
    """ValidateLabels: qualified-name keys and label values; errors carry the map's path, not the key's."""
    causes: list[Cause] = []
    for key, value in labels.items():
        causes.extend(invalid(path, key, m) for m in is_qualified_name(key))
        causes.extend(invalid(path, value, m) for m in is_label_value(value or ""))
    return causes


def validate_annotations(annotations: Mapping[str, str], path: str) -> list[Cause]:
    """ValidateAnnotations: keys are qualified names in any case; keys and values total at most 256 KiB."""
    causes: list[Cause] = []
    total = 0
    for key, value in annotations.items():
        causes.extend(invalid(path, key, m) for m in is_qualified_name(key.lower()))
        value = value or ""
        total += len(key) + (len(value) if value.isascii() else len(value.encode()))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _validate_owner_references(owners: list[Mapping[str, Any]]) -> list[Cause]:
    path = "metadata.ownerReferences"
    causes = []
    controller = ""
    for ref in owners:
        api_version = ref.get("apiVersion") or ""
        version = "" if api_version.count("/") > 1 else api_version.rpartition("/")[2]
        if not version:
            causes.append(invalid(path + ".apiVersion", api_version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                causes.append(invalid(f"{path}.{key}", ref.get(key) or "", "must not be empty"))
        if api_version == "v1" and ref.get("kind") == "Event":
            causes.append(invalid(path, GoValue(_go_owner(ref)), "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller"):
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if controller:
                causes.append(
                    invalid(
                        path,
                        GoValue("[]v1.OwnerReference{" + ", ".join(map(_go_owner, owners)) + "}"),
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {controller} and {current}",
                    )
                )
            else:
                controller = current
    return causes


def _go_owner(ref: Mapping[str, Any]) -> str:
    return (
        f'v1.OwnerReference{{APIVersion:"{ref.get("apiVersion", "")}", Kind:"{ref.get("kind", "")}", '
        f'Name:"{ref.get("name", "")}", UID:"{ref.get("uid", "")}"}}'
    )


def _validate_finalizers(finalizers: list[str]) -> list[Cause]:
    path = "metadata.finalizers"
    causes: list[Cause] = []
    for finalizer in finalizers:
        causes.extend(invalid(path, finalizer, m) for m in is_qualified_name(finalizer))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        causes.append(
            invalid(
                path,
                go_string_slice(finalizers),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    for i, finalizer in enumerate(finalizers):
        causes.extend(validate_kube_finalizer_name(finalizer, f"{path}[{i}]"))
    return causes


def validate_kube_finalizer_name(finalizer: str, path: str) -> list[Cause]:
    """An unqualified finalizer must be one of kube's own (`kubernetes`, `orphan`, `foregroundDeletion`)."""
    if "/" in finalizer or finalizer in _STANDARD_FINALIZERS:
        return []
    return [invalid(path, finalizer, "name is neither a standard finalizer name nor is it fully qualified")]


# -- label selectors -------------------------------------------------------------------------------


def validate_label_selector(selector: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """ValidateLabelSelector (strict: invalid label values in expressions are rejected)."""
    if selector is None:
        return []
    causes = validate_labels(selector.get("matchLabels") or {}, path + ".matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or ()):
        expr_path = f"{path}.matchExpressions[{i}]"
        operator = expr.get("operator", "")
        values = expr.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(required(expr_path + ".values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    forbidden(
                        expr_path + ".values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            causes.append(invalid(expr_path + ".operator", operator, "not a valid selector operator"))
        key = expr.get("key", "")
        causes.extend(invalid(expr_path + ".key", key, m) for m in is_qualified_name(key))
        for j, value in enumerate(values):
            causes.extend(invalid(f"{expr_path}.values[{j}]", value, m) for m in is_label_value(value))
    return causes
