"""Field errors worded as kube's `field.Error.ErrorBody()`, returned as `StatusCause` dicts.

A cause's message is what follows the field path in kube's 422 text:
`Required value`, `Invalid value: "X": detail`, `Unsupported value: "X": supported values: "A", "B"`.
`undecodable` is the 400 kube answers before validation when a body does not decode.
Values print as Go prints them (`%q` for strings, `%v` for numbers, `%#v` for structs), so compound values
are rendered by the `go_*` helpers here and passed as `GoValue`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shim.apiserver import errors
from shim.apiserver.errors import ApiError, cause
from shim.machinery.gofmt import go_quote

Cause = dict[str, str]


class GoValue(str):
    """A value already rendered the way Go's fmt prints it; `invalid()` shows it verbatim."""


def required(path: str, detail: str = "") -> Cause:
    """`field.Required`: a value that must be set is missing or empty."""
    return cause("FieldValueRequired", path, "Required value: " + detail if detail else "Required value")


def invalid(path: str, value: Any, detail: str) -> Cause:
    """`field.Invalid`: a malformed value."""
    return cause("FieldValueInvalid", path, _with_value("Invalid value", value, detail))


def unsupported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    """`field.NotSupported`: a value outside an enumeration (listed in the order given)."""
    detail = "supported values: " + ", ".join(go_quote(s) for s in supported)
    return cause("FieldValueNotSupported", path, _with_value("Unsupported value", value, detail))


def forbidden(path: str, detail: str) -> Cause:
    """`field.Forbidden`: a valid value that is not allowed here."""
    return cause("FieldValueForbidden", path, "Forbidden: " + detail if detail else "Forbidden")


def duplicate(path: str, value: Any) -> Cause:
    """`field.Duplicate`: a value that must be unique is repeated."""
    return cause("FieldValueDuplicate", path, _with_value("Duplicate value", value, ""))


def not_found(path: str, value: Any) -> Cause:
    """`field.NotFound`: a reference to something that does not exist."""
    return cause("FieldValueNotFound", path, _with_value("Not found", value, ""))


def too_long(path: str, max_bytes: int) -> Cause:
    """`field.TooLong`: the value itself is not repeated."""
    return cause("FieldValueTooLong", path, f"Too long: must have at most {max_bytes} bytes")


def undecodable(kind: str, version: str, exc: Exception) -> ApiError:
    """400 for a body kube cannot decode (a bad quantity, bad base64), worded like its decoder."""
    return errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {exc}')


def go_string_map(m: Mapping[str, str] | None) -> GoValue:
    """`%#v` of a `map[string]string` (keys sorted, as Go prints maps)."""
    if m is None:
        return GoValue("map[string]string(nil)")
    items = ", ".join(f"{go_quote(k)}:{go_quote(str(m[k]))}" for k in sorted(m))
    return GoValue("map[string]string{" + items + "}")


def go_string_slice(values: Iterable[str] | None) -> GoValue:
    """`%#v` of a `[]string`."""
    if values is None:
        return GoValue("[]string(nil)")
    return GoValue("[]string{" + ", ".join(go_quote(str(v)) for v in values) + "}")


def go_label_selector(selector: Mapping[str, Any]) -> GoValue:
    """`%#v` of a `v1.LabelSelector`, as kube prints it in `spec.selector` errors."""
    exprs = selector.get("matchExpressions")
    if exprs is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        rendered = (
            "[]v1.LabelSelectorRequirement{"
            + ", ".join(
                f"v1.LabelSelectorRequirement{{Key:{go_quote(e.get('key', ''))}, "
                f"Operator:{go_quote(e.get('operator', ''))}, Values:{go_string_slice(e.get('values'))}}}"
                for e in exprs
            )
            + "}"
        )
    return GoValue(
        f"v1.LabelSelector{{MatchLabels:{go_string_map(selector.get('matchLabels'))}, MatchExpressions:{rendered}}}"
    )


def go_int_or_string(value: int | str) -> GoValue:
    """`%#v` of an `intstr.IntOrString`."""
    if isinstance(value, str):
        return GoValue(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}")
    return GoValue(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')


def _render(value: Any) -> str:
    if isinstance(value, GoValue):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _with_value(kind: str, value: Any, detail: str) -> str:
    text = f"{kind}: {_render(value)}"
    return f"{text}: {detail}" if detail else text
