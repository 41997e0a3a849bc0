"""Field selectors over a kind's fields: how a strategy declares the fields it exposes and the labels a client
may use for them, and how a selector is converted and matched against them.

Each kind's set (its registry's `GetAttrs` and its scheme's field-label conversion function) is its strategy's
`selectable_fields`; parsing the selectors themselves is shared API machinery (`shim.machinery.selectors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shim.machinery.gofmt import go_quote
from shim.machinery.selectors import FieldRequirement, FieldSelector, SelectorError, all_of

Obj = Mapping[str, Any]

# -- the fields a kind exposes -------------------------------------------------------------------------------

Getter = Callable[[Obj], str]


@dataclass(frozen=True)
class SelectableFields:
    """What one kind lets clients select on: labels accepted, their canonical names, and how to read each
    (a strategy's `selectable_fields`)."""

    getters: Mapping[str, Getter]  # canonical label -> value in the object
    aliases: Mapping[str, str]  # label a client may send -> canonical label
    unsupported: Callable[[str], str]  # the error message for any other label

    def values(self, obj: Obj) -> dict[str, str]:
        """The fields kube exposes for this object (its GetAttrs field set), keyed by canonical label."""
        return {label: get(obj) for label, get in self.getters.items()}

    def supported(self) -> frozenset[str]:
        """Every label a client may use in a fieldSelector (kube's field label conversion)."""
        return frozenset(self.aliases)

    def convert(self, selector: FieldSelector) -> FieldSelector:
        """Rewrite client labels to canonical ones (`spec.host`, `regarding.name`).

        An unsupported label raises SelectorError with kube's message: `field label not supported: x`, or, for
        kinds without a conversion function, `"x" is not a known field selector: only "metadata.name", ...`.
        """
        converted = []
        for r in selector.requirements:
            canonical = self.aliases.get(r.field)
            if canonical is None:
                raise SelectorError(self.unsupported(r.field))
            converted.append(FieldRequirement(canonical, r.operator, r.value))
        return FieldSelector(converted)

    def matcher(self, selector: FieldSelector) -> Callable[[Obj], bool]:
        """A predicate over whole objects reading only the fields the converted selector names: the fast path."""
        return all_of([_field_check(self.getters.get(r.field, absent), r) for r in selector.requirements])


def _field_check(get: Getter, r: FieldRequirement) -> Callable[[Obj], bool]:
    value = r.value
    if r.operator == "=":
        return lambda obj: get(obj) == value
    return lambda obj: get(obj) != value


def absent(obj: Obj) -> str:
    """A label conversion accepts but GetAttrs never sets (`status.podIPs`): it always reads as ""."""
    return ""


def path_field(key: str, child: str | None = None) -> Getter:
    """A string field, top-level or one level down; missing reads as ""."""
    if child is None:
        return lambda obj: obj.get(key) or ""
    return lambda obj: (obj.get(key) or _NO_FIELDS).get(child) or ""


def bool_field(key: str, child: str) -> Getter:
    """A boolean field rendered as Go's strconv.FormatBool."""
    return lambda obj: "true" if (obj.get(key) or _NO_FIELDS).get(child) is True else "false"


_NO_FIELDS: Obj = {}


def not_supported(label: str) -> str:
    """kube's message for a label a kind's conversion function refuses."""
    return f"field label not supported: {label}"


def _not_known(label: str) -> str:
    return f'{go_quote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"'


def selectable(
    getters: Mapping[str, Getter],
    aliases: Mapping[str, str] | None = None,
    unsupported: Callable[[str], str] = not_supported,
) -> SelectableFields:
    """A kind whose labels are its canonical field names, plus any aliases."""
    return SelectableFields(getters, {label: label for label in getters} | dict(aliases or {}), unsupported)


NAME: Mapping[str, Getter] = {"metadata.name": path_field("metadata", "name")}
NAMESPACED: Mapping[str, Getter] = {**NAME, "metadata.namespace": path_field("metadata", "namespace")}
#: kinds without a conversion function accept only metadata.name and metadata.namespace
DEFAULT = selectable(NAMESPACED, unsupported=_not_known)
