"""Query-string parsing the way kube-apiserver (Go) does it."""

from __future__ import annotations

from multidict import MultiMapping

from shim.apiserver.errors import ApiError, bad_request, invalid
from shim.apiserver.kinds.causes import forbidden, go_string_slice, unsupported

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(query: MultiMapping[str], name: str, default: bool = False) -> bool:
    """A boolean parameter parsed like Go's strconv.ParseBool (`True`, `1`, `t` ... are true)."""
    value = query.get(name)
    if value is None or value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_request(f'invalid value for {name}: strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_int(query: MultiMapping[str], name: str) -> int | None:
    """An optional integer parameter; garbage is a 400, not a 500."""
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f'invalid value for {name}: strconv.ParseInt: parsing "{value}": invalid syntax') from None


def dry_run(query: MultiMapping[str], body_values: list[str] | None = None, options: str = "CreateOptions") -> bool:
    """`dryRun=All` from the query (or a DeleteOptions body). Any other value is kube's 422 for the verb's
    options kind (`CreateOptions`, `UpdateOptions`, `PatchOptions`, `DeleteOptions`): ValidateDryRun."""
    values = [str(value) for value in [*query.getall("dryRun", []), *(body_values or [])]]
    if any(value != "All" for value in values):
        raise options_invalid(options, unsupported("dryRun", go_string_slice(values), ["All"]))
    return bool(values)


def check_patch_options(query: MultiMapping[str], apply: bool) -> None:
    """kube's ValidatePatchOptions for `force`: it belongs to apply patches alone (present at all is too much)."""
    if not apply and "force" in query:
        raise options_invalid("PatchOptions", forbidden("force", "may not be specified for non-apply patch"))


def check_list_options(query: MultiMapping[str]) -> None:
    """kube's ValidateListOptions for `resourceVersionMatch` on a list: every problem in one 422 ListOptions."""
    match = query.get("resourceVersionMatch")
    if not match:
        return
    rv = query.get("resourceVersion")
    causes = []
    if not rv:
        causes.append(forbidden(_MATCH, "resourceVersionMatch is forbidden unless resourceVersion is provided"))
    if query.get("continue"):
        causes.append(forbidden(_MATCH, "resourceVersionMatch is forbidden when continue is provided"))
    if match not in ("Exact", "NotOlderThan"):
        causes.append(unsupported(_MATCH, match, ["Exact", "NotOlderThan", ""]))
    if match == "Exact" and rv == "0":
        causes.append(forbidden(_MATCH, 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if causes:
        raise invalid("meta.k8s.io", "ListOptions", "", causes)


_MATCH = "resourceVersionMatch"


def options_invalid(options: str, cause: dict[str, str]) -> ApiError:
    """422 for a bad query option, as kube's `NewInvalid(meta.k8s.io/<options>, "", errs)`."""
    return invalid("meta.k8s.io", options, "", [cause])


def field_validation(query: MultiMapping[str], options: str = "CreateOptions") -> str:
    """`fieldValidation`: Strict, Warn (the server default) or Ignore; anything else is kube's 422 for the
    verb's options kind (ValidateFieldValidation)."""
    value = query.get("fieldValidation") or "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise options_invalid(options, unsupported("fieldValidation", value, ["", "Ignore", "Strict", "Warn"]))
    return value


def options_kind(method: str) -> str:
    """The options kind kube decodes a write's query into (`PUT` -> `UpdateOptions`)."""
    return {"PUT": "UpdateOptions", "PATCH": "PatchOptions", "DELETE": "DeleteOptions"}.get(method, "CreateOptions")
