"""Query-string parsing the way kube-apiserver (Go) does it."""

from __future__ import annotations

from multidict import MultiMapping

from shim.apiserver.errors import bad_request

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


def dry_run(query: MultiMapping[str], body_values: list[str] | None = None) -> bool:
    """`dryRun=All` from the query (or a DeleteOptions body); any other value is refused as kube does."""
    values = list(query.getall("dryRun", [])) + list(body_values or [])
    for value in values:
        if value != "All":
            raise bad_request(f'Invalid dryRun parameter: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


def field_validation(query: MultiMapping[str]) -> str:
    """`fieldValidation`: Strict, Warn (the server default) or Ignore."""
    value = query.get("fieldValidation") or "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise bad_request(
            f'Invalid fieldValidation parameter: Unsupported value: "{value}": '
            'supported values: "Ignore", "Strict", "Warn"'
        )
    return value
