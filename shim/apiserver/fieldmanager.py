"""Server-side apply and `metadata.managedFields`, after kube's fieldmanager and structured-merge-diff.

- `apply` merges an applied configuration into the live object as one field manager: it owns exactly
  the fields it applied, fields it stops applying are removed when nobody else owns them, and changing
  a field another manager owns is a conflict (409) unless forced, in which case ownership moves.
- `update_managed_fields` runs on every other write (create, PUT, PATCH): the writer becomes an owner
  of the fields it changed, and those fields are taken from everyone else.

How a value is merged and tracked follows its schema, as upstream converts OpenAPI: lists by
`x-kubernetes-list-type` (map items keyed by `x-kubernetes-list-map-keys`, set items by value, atomic
lists whole; without a list type, `x-kubernetes-patch-strategy: merge` makes a list-map or a set),
objects by `x-kubernetes-map-type` (atomic maps whole), and anything without a schema is "deduced"
(maps merged per key, lists atomic). Field sets are FieldsV1 dicts (`shim.apiserver.fieldpath`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson

from shim.apiserver import errors
from shim.apiserver.fieldpath import (
    SELF,
    FieldSet,
    difference,
    element_order,
    encode_value,
    intersection,
    is_member,
    key_element,
    members,
    path_string,
    union,
    value_element,
)
from shim.apiserver.schema import SchemaNode
from shim.apiserver.typed_patch import check_applied

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10  # older Update entries are merged into "ancient-changes" buckets beyond this

# kubectl's server-side apply manager: upstream upgrades client-side apply ownership only for it
_KUBECTL = "kubectl"
_BEFORE_FIRST_APPLY = "before-first-apply"
_ANCIENT_CHANGES = "ancient-changes"

# Never owned by anyone (upstream's stripMeta): the object's type, identity and bookkeeping.
_STRIPPED_ROOT = frozenset({"apiVersion", "kind"})
_STRIPPED_META = frozenset({"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
                            "generation", "managedFields", "resourceVersion"})  # fmt: skip
_SKIP_BELOW_ROOT = {"metadata": _STRIPPED_META}

# Fields a typed (Go) object always has, even when zero: non-pointer structs, and `containers`, which is
# not omitempty. A create is compared against the zero object, so it owns what is inside them, not them.
_ZERO_PRESENT = frozenset({"metadata", "spec", "status", "template", "jobTemplate", "strategy", "updateStrategy",
                           "loadBalancer", "involvedObject", "source", "regarding", "deprecatedSource",
                           "daemonEndpoints", "kubeletEndpoint", "nodeInfo", "containers"})  # fmt: skip

# Upstream `+default`s of list-map key fields; the served documents carry no `default`, and without
# them an applied port without `protocol` would not match the defaulted live port.
_KEY_DEFAULTS = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
}

_MISSING: Any = object()


class ApplyConflict(errors.ApiError):
    """409 Conflict: the apply changes fields other managers own; `conflicts` is [(manager, path)]."""

    def __init__(self, conflicts: dict[_Key, FieldSet]) -> None:
        self.by_manager = conflicts
        ordered = sorted(conflicts.items(), key=lambda item: _identifier(item[0]))
        self.conflicts = [(key[0], path_string(p)) for key, fields in ordered for p in members(fields)]
        causes = [
            {"reason": "FieldManagerConflict", "message": f"conflict with {_print_manager(key)}",
             "field": path_string(p)}
            for key, fields in ordered for p in members(fields)
        ]  # fmt: skip
        if len(causes) == 1:
            message = f"Apply failed with 1 conflict: {causes[0]['message']}: {causes[0]['field']}"
        else:
            lines = []
            for key, fields in ordered:
                lines.append(f"conflicts with {_print_manager(key)}:")
                lines.extend(f"- {path_string(p)}" for p in members(fields))
            message = f"Apply failed with {len(causes)} conflicts: " + "\n".join(lines)
        super().__init__(409, "Conflict", message, {"causes": causes})


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    schema: SchemaNode | None,
    now: str,
    api_version: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object after `manager` applies `applied` to `live` (None: the object does not exist yet).

    The result is a new object with `metadata.managedFields` updated (an `Apply` entry for `manager`, for
    `subresource` when one is named); status is never changed through the main resource, spec never through
    `status`. Raises `ApplyConflict` when the apply would change fields other managers own and `force` is
    false, and a 400 `ApiError` for a malformed configuration or one that does not fit the schema.
    """
    _check_applied(live, applied, api_version)
    group, _, version = api_version.rpartition("/")
    check_applied(applied, schema, group, version, str(applied.get("kind") or ""))
    t = _type_of(schema)
    ignored = "spec" if subresource == "status" else "status" if "status" in t.declared else None
    base = orjson.loads(orjson.dumps(live)) if live is not None else {}
    managers = _decode(base.get("metadata", {}).get("managedFields")) or {}
    if live is not None and not managers:
        # upstream: the fields of an object nobody tracked belong to "before-first-apply"
        changed, _ = _diff_object(None, base, t, ignored)
        if changed:
            managers[(_BEFORE_FIRST_APPLY, "Update", api_version, "")] = _Entry(
                _BEFORE_FIRST_APPLY, "Update", api_version, "", now, changed
            )
    config = {key: value for key, value in applied.items() if key != ignored}
    try:
        result, managers = _apply(base, config, managers, (manager, subresource), force, t, ignored, now, api_version)
    except ApplyConflict as exc:
        if manager != _KUBECTL:
            raise
        # kubectl --server-side takes over what its client-side apply set, as upstream's lastAppliedManager
        allowed = _last_applied_fields(base, t, ignored, api_version)
        if allowed is None:
            raise
        remaining = {key: difference(fields, allowed) for key, fields in exc.by_manager.items()}
        remaining = {key: fields for key, fields in remaining.items() if fields}
        if remaining:
            raise ApplyConflict(remaining) from None
        result, managers = _apply(base, config, managers, (manager, subresource), True, t, ignored, now, api_version)
    if manager == _KUBECTL and result.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED):
        result["metadata"]["annotations"][LAST_APPLIED] = _last_applied_value(applied)
    _store(result, managers)
    return result


def update_managed_fields(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    operation: str = "Update",
    subresource: str | None = None,
    *,
    schema: SchemaNode | None,
    now: str,
    api_version: str,
) -> None:
    """Record a non-apply write of `new` over `old` (None on create) in `new`'s `metadata.managedFields`.

    `manager` becomes an owner of every field it changed (its entry's `time` is `now` when it changed
    anything), and those fields are taken from all other managers. managedFields sent in `new` replace
    the stored ones (a single empty entry clears them); a subresource write always keeps the stored ones.
    """
    meta = new.setdefault("metadata", {})
    sent = meta.get("managedFields")
    if subresource or sent is None or not (managers := _decode(sent)):
        if not subresource and _is_reset(sent):
            managers = {}
        else:
            managers = _decode((old or {}).get("metadata", {}).get("managedFields")) or {}
    if not managers and old is not None:
        # upstream tracks an existing object only once something (an apply) started tracking it
        meta.pop("managedFields", None)
        return
    t = _type_of(schema)
    ignored = "spec" if subresource == "status" else "status" if "status" in t.declared else None
    changed, removed = _diff_object(old, new, t, ignored)
    if changed or removed:
        managers = _take(managers, changed, removed, None)
    if changed:
        key = (manager, operation, api_version, subresource or "")
        previous = managers.get(key)
        fields = changed if previous is None else union(previous.fields, changed)
        managers[key] = _Entry(manager, operation, api_version, subresource or "", now, fields)
        _cap_update_managers(managers)
    _store(new, managers)


# -- apply ---------------------------------------------------------------------------------------------------


def _check_applied(live: dict[str, Any] | None, applied: dict[str, Any], api_version: str) -> None:
    kind = applied.get("kind")
    if applied.get("apiVersion") != api_version or (live is not None and live.get("kind", kind) != kind):
        group, _, version = str(applied.get("apiVersion") or "").rpartition("/")
        raise errors.bad_request(f"invalid object type: {group}/{version}, Kind={kind or ''}")
    if (applied.get("metadata") or {}).get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")


def _apply(
    live: dict[str, Any],
    config: dict[str, Any],
    managers: dict[_Key, _Entry],
    applier: tuple[str, str],
    force: bool,
    t: _Type,
    ignored: str | None,
    now: str,
    api_version: str,
) -> tuple[dict[str, Any], dict[_Key, _Entry]]:
    """Merge, prune what the applier (manager, subresource) stopped applying, check conflicts: upstream's
    Updater.Apply."""
    manager, subresource = applier
    key: _Key = (manager, "Apply", "", subresource)
    previous = managers.get(key)
    merged = _merge(live, config, t)
    applied_fields = _fields_map(config, t, _STRIPPED_ROOT, _SKIP_BELOW_ROOT)
    managers = dict(managers)
    time = previous.time if previous else None
    managers[key] = _Entry(manager, "Apply", api_version, subresource, time, applied_fields)
    if previous is not None and previous.fields:
        # upstream prunes before stripping identity fields from the new set: `metadata.name` keeps metadata
        owned = _fields_map(config, t)
        for other, entry in managers.items():
            if other != key:
                owned = union(owned, entry.fields)
        merged = _prune(merged, previous.fields, owned, t)
    changed, removed = _diff_object(live, merged, t, ignored)
    conflicts = {
        other: common
        for other, entry in managers.items()
        if other != key and (common := intersection(entry.fields, changed))
    }
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    managers = _take(managers, changed, removed, key)
    if merged != live:
        managers[key] = replace(managers[key], time=now)
    if not managers[key].fields:
        del managers[key]
    return merged, managers


def _last_applied_fields(live: dict[str, Any], t: _Type, ignored: str | None, api_version: str) -> FieldSet | None:
    """The fields kubectl's last client-side apply set that still hold the values it set."""
    raw = live.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        last = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return None
    fields = _fields_map(last, t, _STRIPPED_ROOT, _SKIP_BELOW_ROOT)
    changed, removed = _diff_object(last, live, t, ignored)
    return difference(difference(fields, changed), removed)


def _last_applied_value(applied: dict[str, Any]) -> str:
    """The annotation as upstream rewrites it: the applied config without it, JSON with sorted keys."""
    config = orjson.loads(orjson.dumps(applied))
    annotations = config.get("metadata", {}).get("annotations")
    if annotations is not None:
        annotations.pop(LAST_APPLIED, None)
    return encode_value(config) + "\n"


# -- managedFields entries -----------------------------------------------------------------------------------

_Key = tuple[str, str, str, str]  # manager, operation, apiVersion (Update only), subresource


@dataclass(frozen=True, slots=True)
class _Entry:
    """One managedFields entry; `raw` is the entry as read, reused as long as nothing changes."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: FieldSet
    raw: dict[str, Any] | None = None


def _decode(entries: Any) -> dict[_Key, _Entry] | None:
    """The entries by manager identity; None when absent or malformed (upstream then ignores them)."""
    if not isinstance(entries, list) or not entries:
        return None
    managers: dict[_Key, _Entry] = {}
    for raw in entries:
        if not isinstance(raw, dict):
            return None
        operation, api_version, fields = raw.get("operation"), raw.get("apiVersion"), raw.get("fieldsV1", {})
        if operation not in ("Apply", "Update") or not api_version or raw.get("fieldsType") != "FieldsV1":
            return None
        if not isinstance(fields, dict):
            return None
        manager, subresource = str(raw.get("manager", "")), str(raw.get("subresource", ""))
        key = (manager, operation, api_version if operation == "Update" else "", subresource)
        managers[key] = _Entry(manager, operation, api_version, subresource, raw.get("time"), fields, raw)
    return managers


def _is_reset(entries: Any) -> bool:
    """An empty list or a single empty entry asks to clear managedFields."""
    return isinstance(entries, list) and (not entries or entries == [{}])


def _store(obj: dict[str, Any], managers: dict[_Key, _Entry]) -> None:
    """Write the entries in upstream's order (Apply first, then by time, manager, apiVersion, subresource)."""
    meta = obj.setdefault("metadata", {})
    if not managers:
        meta.pop("managedFields", None)
        return
    ordered = sorted(
        managers.values(), key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource)
    )
    meta["managedFields"] = [entry.raw if entry.raw is not None else _encode(entry) for entry in ordered]


def _encode(entry: _Entry) -> dict[str, Any]:
    raw: dict[str, Any] = {"manager": entry.manager, "operation": entry.operation, "apiVersion": entry.api_version}
    if entry.time:
        raw["time"] = entry.time
    raw["fieldsType"] = "FieldsV1"
    raw["fieldsV1"] = entry.fields
    if entry.subresource:
        raw["subresource"] = entry.subresource
    return raw


def _take(managers: dict[_Key, _Entry], changed: FieldSet, removed: FieldSet, keep: _Key | None) -> dict[_Key, _Entry]:
    """Every manager but `keep` loses the fields that changed or went away; empty entries go."""
    out: dict[_Key, _Entry] = {}
    for key, entry in managers.items():
        if key == keep:
            out[key] = entry
            continue
        fields = difference(difference(entry.fields, changed), removed)
        if fields is entry.fields:
            out[key] = entry
        elif fields:
            out[key] = replace(entry, fields=fields, raw=None)
    return out


def _cap_update_managers(managers: dict[_Key, _Entry]) -> None:
    """Merge the oldest Update entries into per-version "ancient-changes" buckets beyond the cap."""
    updaters = [key for key, entry in managers.items() if entry.operation == "Update"]
    excess = len(updaters) - MAX_UPDATE_MANAGERS
    if excess <= 0:
        return
    updaters.sort(key=lambda key: (managers[key].time or "", _identifier(key)))
    first_by_version: dict[str, _Key] = {}
    for key in updaters:
        if excess <= 0:
            break
        entry = managers[key]
        first = first_by_version.setdefault(entry.api_version, key)
        if first == key:
            continue
        bucket: _Key = (_ANCIENT_CHANGES, "Update", entry.api_version, "")
        if key == bucket:
            continue
        if bucket not in managers:
            managers[bucket] = managers.pop(first)
        managers[bucket] = _Entry(_ANCIENT_CHANGES, "Update", entry.api_version, "", entry.time,
                                  union(managers[bucket].fields, entry.fields))  # fmt: skip
        del managers[key]
        excess -= 1


def _identifier(key: _Key) -> str:
    """Upstream's manager identifier (the entry's JSON without time and fields), used to order managers."""
    manager, operation, api_version, subresource = key
    text = '{"manager":' + encode_value(manager) + ',"operation":' + encode_value(operation)
    if api_version:
        text += ',"apiVersion":' + encode_value(api_version)
    if subresource:
        text += ',"subresource":' + encode_value(subresource)
    return text + "}"


def _print_manager(key: _Key) -> str:
    manager, operation, api_version, subresource = key
    text = encode_value(manager)
    if subresource:
        text += f" with subresource {encode_value(subresource)}"
    return f"{text} using {api_version}" if operation == "Update" else text


# -- schema types --------------------------------------------------------------------------------------------

_LEAF, _STRUCT, _MAP, _LIST_MAP, _LIST_SET, _DEDUCED = range(6)
_GRANULAR_MAPS = frozenset({_STRUCT, _MAP, _DEDUCED})
_ASSOCIATIVE_LISTS = frozenset({_LIST_MAP, _LIST_SET})


class _Type:
    """How structured-merge-diff treats one schema node; children are resolved once, on first use."""

    __slots__ = ("_elem", "_fields", "_node", "declared", "key_defaults", "keys", "kind", "single_key_prefix")

    def __init__(self, node: SchemaNode | None) -> None:
        self._node = node
        self._fields: dict[str, _Type] = {}
        self._elem: _Type | None = None
        self.kind, self.keys = _classify(node)
        self.declared = frozenset(node.properties) if node is not None and self.kind == _STRUCT else frozenset()
        item_name = (node.items.name if node is not None and node.items is not None else None) or ""
        self.single_key_prefix = "k:{" + encode_value(self.keys[0]) + ":" if len(self.keys) == 1 else ""
        self.key_defaults = {k: _KEY_DEFAULTS[(item_name, k)] for k in self.keys if (item_name, k) in _KEY_DEFAULTS}

    def field(self, name: str) -> _Type:
        found = self._fields.get(name)
        if found is None:
            found = self._fields[name] = _type_of(self._node.field(name) if self._node is not None else None)
        return found

    @property
    def elem(self) -> _Type:
        if self._elem is None:
            self._elem = _type_of(self._node.items if self._node is not None else None)
        return self._elem


_TYPES: dict[SchemaNode, _Type] = {}


def _type_of(node: SchemaNode | None) -> _Type:
    if node is None:
        return _DEDUCED_TYPE
    found = _TYPES.get(node)
    if found is None:
        found = _TYPES[node] = _Type(node)
    return found


def _classify(node: SchemaNode | None) -> tuple[int, tuple[str, ...]]:
    """The kind of a node (upstream's schemaconv), and a list-map's key fields sorted by name."""
    if node is None:
        return _DEDUCED, ()
    if node.type == "array" or node.items is not None:
        if node.list_type == "map":
            return _LIST_MAP, tuple(sorted(node.list_map_keys))
        if node.list_type == "set":
            return _LIST_SET, ()
        if node.list_type is None and "merge" in node.patch_strategies:
            return (_LIST_MAP, (node.patch_merge_key,)) if node.patch_merge_key else (_LIST_SET, ())
        return _LEAF, ()
    if node.map_type == "atomic":
        return _LEAF, ()
    if node.properties:
        return _STRUCT, ()
    if node.additional_properties is not None:
        return _MAP, ()
    if node.type in ("string", "integer", "number", "boolean"):
        return _LEAF, ()
    return _DEDUCED, ()


_DEDUCED_TYPE = _Type(None)


def _item_element(item: Any, t: _Type) -> str:
    """The path element of a list item: `k:` by its key fields for list-maps, `v:` by value for sets."""
    if t.kind == _LIST_SET or not isinstance(item, dict):
        return value_element(item)
    keys = t.keys
    if len(keys) == 1:  # the common case (`name`), without building pairs
        value = item.get(keys[0], _MISSING)
        if value is not _MISSING:
            return t.single_key_prefix + encode_value(value) + "}"
    pairs = []
    for name in keys:
        value = item.get(name, _MISSING)
        if value is _MISSING:
            value = t.key_defaults.get(name, _MISSING)
        if value is not _MISSING:
            pairs.append((name, value))
    return key_element(pairs)


def _index(items: list[Any], t: _Type) -> dict[str, Any]:
    """The items of an associative list by path element (the first of duplicates wins)."""
    indexed: dict[str, Any] = {}
    for item in items:
        indexed.setdefault(_item_element(item, t), item)
    return indexed


# -- field sets of values ------------------------------------------------------------------------------------


def _diff_object(
    old: dict[str, Any] | None, new: dict[str, Any], t: _Type, ignored: str | None
) -> tuple[FieldSet, FieldSet]:
    """(changed, removed) from `old` (None: the zero object) to `new`, skipping stripped and ignored fields."""
    skip = _STRIPPED_ROOT | {ignored} if ignored else _STRIPPED_ROOT
    changed, removed = _diff_map(old or {}, new, t, skip, _SKIP_BELOW_ROOT)
    return changed or {}, removed or {}


def _diff(lhs: Any, rhs: Any, t: _Type) -> tuple[FieldSet | None, FieldSet | None]:
    """(changed, removed) nodes for one path: upstream's Compare, with Modified and Added together."""
    if lhs is _MISSING:
        return _added(rhs, t), None
    if rhs is _MISSING:
        return None, _added(lhs, t)
    kind = t.kind
    if kind in _GRANULAR_MAPS and isinstance(lhs, dict) and isinstance(rhs, dict):
        return _diff_map(lhs, rhs, t, frozenset(), None)
    if kind in _ASSOCIATIVE_LISTS and isinstance(lhs, list) and isinstance(rhs, list) and (lhs or rhs):
        return _diff_list(lhs, rhs, t)
    return {}, None


def _diff_map(
    lhs: dict[str, Any], rhs: dict[str, Any], t: _Type, skip: frozenset[str], skip_below: dict | None
) -> tuple[FieldSet | None, FieldSet | None]:
    keys = [k for k, v in rhs.items() if k not in skip and lhs.get(k, _MISSING) != v]
    keys.extend(k for k in lhs if k not in rhs and k not in skip)
    changed: FieldSet = {}
    removed: FieldSet = {}
    for k in sorted(keys):
        lv, rv = lhs.get(k, _MISSING), rhs.get(k, _MISSING)
        if lv is _MISSING and k not in _ZERO_PRESENT:  # what a create adds, kept cheap for scalars
            changed["f:" + k] = _added(rv, t.field(k)) if rv and isinstance(rv, dict | list) else {}
            continue
        ft = t.field(k)
        if k in _ZERO_PRESENT and k in t.declared and ft.kind in (_STRUCT, _LIST_MAP):
            zero: dict[str, Any] | list[Any] = {} if ft.kind == _STRUCT else []
            lv = zero if lv is _MISSING else lv
            rv = zero if rv is _MISSING else rv
        if skip_below is not None and k in skip_below and isinstance(lv, dict) and isinstance(rv, dict):
            c, r = _diff_map(lv, rv, ft, skip_below[k], None)
        elif lv == rv:
            continue
        else:
            c, r = _diff(lv, rv, ft)
        if c is not None:
            changed["f:" + k] = c
        if r is not None:
            removed["f:" + k] = r
    return changed or None, removed or None


def _diff_list(lhs: list[Any], rhs: list[Any], t: _Type) -> tuple[FieldSet | None, FieldSet | None]:
    before, after = _index(lhs, t), _index(rhs, t)
    keys = [pe for pe, item in after.items() if before.get(pe, _MISSING) != item]
    keys.extend(pe for pe in before if pe not in after)
    elem = t.elem
    changed: FieldSet = {}
    removed: FieldSet = {}
    for pe in sorted(keys, key=element_order):
        c, r = _diff(before.get(pe, _MISSING), after.get(pe, _MISSING), elem)
        if c is not None:
            changed[pe] = c
        if r is not None:
            removed[pe] = r
    return changed or None, removed or None


def _added(value: Any, t: _Type) -> FieldSet:
    """The node of a value compared with nothing: it and everything in it (upstream's Compare, lhs nil)."""
    kind = t.kind
    if isinstance(value, dict):
        if not value or kind not in _GRANULAR_MAPS:
            return {}
        node: FieldSet = {SELF: {}}
        for k in sorted(value):
            v = value[k]
            # scalars are by far the most common value: no call for them
            node["f:" + k] = _added(v, t.field(k)) if v and isinstance(v, dict | list) else {}
        return node
    if isinstance(value, list) and value and kind in _ASSOCIATIVE_LISTS:
        indexed = _index(value, t)
        elem = t.elem
        node = {SELF: {}}
        for pe in sorted(indexed, key=element_order) if len(indexed) > 1 else indexed:
            node[pe] = _added(indexed[pe], elem)
        return node
    return {}


def _fields_map(
    value: dict[str, Any], t: _Type, skip: frozenset[str] = frozenset(), skip_below: dict | None = None
) -> FieldSet:
    """The fields an applied object sets (upstream's ToFieldSet), as the children of its node."""
    out: FieldSet = {}
    for k in sorted(value):
        if k in skip:
            continue
        v = value[k]
        ft = t.field(k)
        if v is None or v == {}:
            node: FieldSet | None = {}
        elif skip_below is not None and k in skip_below and isinstance(v, dict):
            node = _fields_map(v, ft, skip_below[k]) or None
        else:
            node = _fields(v, ft, k not in t.declared)
        if node is not None:
            out["f:" + k] = node
    return out


def _fields(value: Any, t: _Type, member: bool) -> FieldSet | None:
    kind = t.kind
    if isinstance(value, dict) and kind in _GRANULAR_MAPS:
        children = _fields_map(value, t)
    elif isinstance(value, list) and kind in _ASSOCIATIVE_LISTS:
        indexed = _index(value, t)
        elem = t.elem
        children = {pe: _fields(indexed[pe], elem, True) or {} for pe in sorted(indexed, key=element_order)}
    else:
        return {}
    if not children:
        return {} if member else None
    return {SELF: {}, **children} if member else children


# -- merging and pruning values ------------------------------------------------------------------------------


def _merge(lhs: Any, rhs: Any, t: _Type) -> Any:
    """`rhs` merged into `lhs` (upstream's Merge): maps per key, associative lists per item, else `rhs`."""
    kind = t.kind
    if kind in _GRANULAR_MAPS and isinstance(rhs, dict):
        out = dict(lhs) if isinstance(lhs, dict) else {}
        for k, v in rhs.items():
            if v is None:
                out.pop(k, None)  # a typed object has no nulls; kube drops them when it converts back
            else:
                out[k] = _merge(out.get(k, _MISSING), v, t.field(k))
        return out
    if kind in _ASSOCIATIVE_LISTS and isinstance(rhs, list) and isinstance(lhs, list):
        return _merge_list(lhs, rhs, t)
    return rhs


def _merge_list(lhs: list[Any], rhs: list[Any], t: _Type) -> list[Any]:
    """Items merged by path element; shared items in `rhs`'s order, others where they stood (upstream)."""
    left, right = _index(lhs, t), _index(rhs, t)
    left_order, right_order = list(left), list(right)
    shared = iter([pe for pe in right_order if pe in left])
    next_shared = next(shared, None)
    elem = t.elem
    out: list[Any] = []
    taken: set[str] = set()
    li = ri = 0
    while li < len(left_order) or ri < len(right_order):
        if li < len(left_order) and ri < len(right_order):
            pe = left_order[li]
            if pe == right_order[ri]:
                taken.add(pe)
                out.append(_merge(left[pe], right[pe], elem))
                li, ri = li + 1, ri + 1
                next_shared = next(shared, None)
                continue
            if pe in right and next_shared is not None and next_shared != pe:
                li += 1  # a shared item, but not the one rhs wants next
                continue
        if li < len(left_order):
            pe = left_order[li]
            if pe not in right:
                out.append(left[pe])
                li += 1
                continue
            if pe in taken:
                li += 1
                continue
        if ri < len(right_order):
            pe = right_order[ri]
            taken.add(pe)
            out.append(_merge(left.get(pe, _MISSING), right[pe], elem))
            ri += 1
            if next_shared == pe:
                next_shared = next(shared, None)
    return out


def _prune(value: Any, last: FieldSet, owned: FieldSet | None, t: _Type) -> Any:
    """`value` without what the applier set last time, no longer applies, and nobody else owns.

    Upstream's prune with EnsureNamedFieldsAreMembers: a named field with owned fields below it counts
    as owned, and removing a member removes everything below it. Returns None when nothing is left.
    """
    kind = t.kind
    if isinstance(value, dict) and kind in _GRANULAR_MAPS:
        out = value
        for pe, below in last.items():
            name = pe[2:]
            if pe[:2] != "f:" or name not in value:
                continue
            mine = owned.get(pe) if owned else None
            named = name in t.declared
            if _owns(below, named) and not _owns(mine, named):
                out = dict(value) if out is value else out
                del out[name]
            elif below and (len(below) > 1 or SELF not in below):
                pruned = _prune(value[name], below, mine, t.field(name))
                if pruned is not value[name]:
                    out = dict(value) if out is value else out
                    if pruned is None:
                        del out[name]
                    else:
                        out[name] = pruned
        return None if not out and out is not value else out
    if isinstance(value, list) and kind in _ASSOCIATIVE_LISTS:
        elem = t.elem
        items = []
        changed = False
        for item in value:
            pe = _item_element(item, t)
            below = last.get(pe)
            if below is None:
                items.append(item)
                continue
            mine = owned.get(pe) if owned else None
            if is_member(below) and not is_member(mine):
                changed = True
                continue
            pruned = _prune(item, below, mine, elem) if below else item
            changed = changed or pruned is not item
            items.append(item if pruned is None else pruned)
        if not changed:
            return value
        return items or None
    return value


def _owns(node: FieldSet | None, named_field: bool) -> bool:
    return node is not None and (named_field or is_member(node))
