"""Schema-level checks of a request body against the served OpenAPI schemas.

kube-apiserver decodes a body into its Go types before anything else. That decoding is what this
module reproduces, with one walk over the object and its schema:
- values of the wrong JSON type, and strings that are not valid for their format (quantities,
  RFC3339 times, base64 bytes, int32 ranges), become `Cause`s;
- fields the schema does not have become `unknown field "spec.foo"` strings, and duplicate keys in
  the raw body (`duplicate_fields`) become `duplicate field "spec.replicas"` strings, in
  sigs.k8s.io/json's wording.
`null` is accepted anywhere (Go decodes it as the zero value), free-form objects (RawExtension,
FieldsV1) are not looked into, and required fields and names are left to the per-kind strategies.

How the API server uses the strings, by `fieldValidation` (default Strict for kubectl, Warn otherwise):
- Strict, create/update: 400 BadRequest, message
  `<Kind> in version "<version>" cannot be handled as a <Kind>: ` + `strict_decoding_message(...)`;
- Strict, patch: 422 Invalid with one cause `{"reason": "FieldValueInvalid", "field": "patch", ...}`
  whose message ends in `strict_decoding_message(...)`;
- Warn: one `Warning: 299 - "<string>"` response header per string, and the request proceeds;
- Ignore: nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

from shim.apiserver.schema import SchemaNode, schema_for
from shim.machinery.gofmt import go_quote

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
MAX_STRICT_ERRORS = 100  # sigs.k8s.io/json stops collecting there

_QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")
_QUANTITY_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class Cause(TypedDict):
    """One entry of a Status' `details.causes`."""

    reason: str
    message: str
    field: str


def find_schema_problems(group: str, version: str, kind: str, obj: dict[str, Any]) -> tuple[list[Cause], list[str]]:
    """Check `obj` against the schema of its kind: (invalid values as causes, unknown fields as strings).

    A kind without a schema has no problems.
    """
    schema = schema_for(group, version, kind)
    walk = _Walk()
    if schema is not None:
        walk.check(obj, schema, "")
    return walk.causes, walk.unknown


def duplicate_fields(body: bytes | str) -> list[str]:
    """`duplicate field "<path>"` for every key repeated inside one JSON object of a raw body."""
    seen_duplicates = False

    def collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal seen_duplicates
        result: dict[str, Any] = {}
        repeated = []
        for key, value in pairs:
            if key in result:
                repeated.append(key)
            result[key] = value
        if not repeated:
            return result
        seen_duplicates = True
        return _Repeated(result, repeated)

    try:
        document = json.loads(body, object_pairs_hook=collect)
    except ValueError:
        return []  # not JSON: the body decoder reports that
    if not seen_duplicates:
        return []
    found: list[str] = []
    _collect_duplicates(document, "", found)
    return list(dict.fromkeys(found))[:MAX_STRICT_ERRORS]


def strict_decoding_message(problems: list[str]) -> str:
    """`strict decoding error: unknown field "spec.foo", duplicate field "x"`, as kube words it."""
    return "strict decoding error: " + ", ".join(problems)


class _Walk:
    """One walk over an object and its schema, collecting causes and unknown fields."""

    def __init__(self) -> None:
        self.causes: list[Cause] = []
        self.unknown: list[str] = []

    def check(self, value: Any, node: SchemaNode, path: str) -> None:
        if value is None:
            return
        kind = node.type
        if kind == "object":
            self._object(value, node, path)
        elif kind == "array":
            if not isinstance(value, list):
                self._wrong_type(value, "array", path)
                return
            items = node.items
            if items is not None:
                for at, element in enumerate(value):
                    self.check(element, items, f"{path}[{at}]")
        elif kind == "string":
            self._string(value, node, path)
        elif kind == "integer":
            self._integer(value, node, path)
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._wrong_type(value, "number", path)
        elif kind == "boolean" and not isinstance(value, bool):
            self._wrong_type(value, "boolean", path)

    def _object(self, value: Any, node: SchemaNode, path: str) -> None:
        if not isinstance(value, dict):
            self._wrong_type(value, "object", path)
            return
        properties = node.properties
        if properties:
            prefix = path + "." if path else ""
            for key, child in value.items():
                field = properties.get(key)
                if field is None:
                    if len(self.unknown) < MAX_STRICT_ERRORS:
                        self.unknown.append("unknown field " + go_quote(prefix + key))  # Go's %q
                else:
                    self.check(child, field, prefix + key)
            return
        values = node.additional_properties
        if values is not None:
            for key, child in value.items():
                self.check(child, values, f"{path}[{key}]")

    def _string(self, value: Any, node: SchemaNode, path: str) -> None:
        fmt = node.format
        if fmt == "int-or-string":
            if isinstance(value, bool) or not isinstance(value, str | int):
                self._wrong_type(value, "string", path)
        elif node.name == QUANTITY:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self._wrong_type(value, "string", path)
            elif isinstance(value, str) and not _QUANTITY.fullmatch(value):
                self._invalid(value, path, _QUANTITY_ERROR)
        elif not isinstance(value, str):
            self._wrong_type(value, "string", path)
        elif fmt == "date-time" and not _RFC3339.fullmatch(value):
            self._invalid(value, path, "must be an RFC3339 date-time")
        elif fmt == "byte":
            self._base64(value, path)

    def _integer(self, value: Any, node: SchemaNode, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(value, "integer", path)
            return
        low, high = _INT_RANGES.get(node.format or "int64", _INT_RANGES["int64"])
        if not low <= value <= high:
            self._invalid(value, path, f"must fit in {node.format or 'int64'}")

    def _base64(self, value: str, path: str) -> None:
        text = value.replace("\r", "").replace("\n", "")  # Go's decoder skips line breaks
        if not _BASE64.fullmatch(text):
            self._invalid(value, path, f"illegal base64 data at input byte {_first_bad_base64_byte(text)}")

    def _wrong_type(self, value: Any, expected: str, path: str) -> None:
        actual = _json_type(value)
        self.causes.append(
            Cause(
                reason="FieldValueTypeInvalid",
                message=f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"',
                field=path,
            )
        )

    def _invalid(self, value: Any, path: str, detail: str) -> None:
        shown = json.dumps(value) if isinstance(value, str) else str(value)
        self.causes.append(Cause(reason="FieldValueInvalid", message=f"Invalid value: {shown}: {detail}", field=path))


class _Repeated(dict[str, Any]):
    """A decoded JSON object that had repeated keys (the last value wins, as in Go)."""

    def __init__(self, values: dict[str, Any], repeated: list[str]) -> None:
        super().__init__(values)
        self.repeated = repeated


def _collect_duplicates(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, dict):
        prefix = path + "." if path else ""
        for key in getattr(value, "repeated", ()):
            found.append("duplicate field " + go_quote(prefix + key))
        for key, child in value.items():
            _collect_duplicates(child, prefix + key, found)
    elif isinstance(value, list):
        for at, child in enumerate(value):
            _collect_duplicates(child, f"{path}[{at}]", found)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _first_bad_base64_byte(text: str) -> int:
    for at, char in enumerate(text):
        if not (char.isascii() and (char.isalnum() or char in "+/=")):
            return at
    return len(text) - len(text) % 4 if len(text) % 4 else len(text)
