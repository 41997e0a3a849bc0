"""Label and field selectors, parsed and matched exactly as kube's apimachinery does.

Label selectors follow `k8s.io/apimachinery/pkg/labels/selector.go` (lexer, parser, validation, error text);
field selectors follow `pkg/fields/selector.go`. Which fields each kind exposes is the API server's business
(`shim.apiserver.selectable_fields`); components use the label selectors here to match what they own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shim.machinery.gofmt import go_quote

Obj = Mapping[str, Any]


class SelectorError(ValueError):
    """A selector kube-apiserver would reject; the message is kube's (the server answers 400 BadRequest)."""


# -- label selectors -----------------------------------------------------------------------------------------

_IN, _NOT_IN, _EQUALS, _DOUBLE_EQUALS, _NOT_EQUALS = "in", "notin", "=", "==", "!="
_GT, _LT, _EXISTS, _DOES_NOT_EXIST = "gt", "lt", "exists", "!"
_BINARY_OPERATORS = (_IN, _NOT_IN, _EQUALS, _DOUBLE_EQUALS, _NOT_EQUALS, _GT, _LT)
_OBJECT_OPERATORS = {"In": _IN, "NotIn": _NOT_IN, "Exists": _EXISTS, "DoesNotExist": _DOES_NOT_EXIST}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `key <op> values` term; `operator` is kube's selection.Operator (`=`, `in`, `!`, `gt`...)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """kube's Requirement.Matches; a missing key satisfies only `!=`, `notin` and `!`."""
        return _requirement_check(self)(labels)

    def __str__(self) -> str:
        op = self.operator
        if op == _EXISTS:
            return self.key
        if op == _DOES_NOT_EXIST:
            return "!" + self.key
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (_IN, _NOT_IN):
            return f"{self.key} {op} ({values})"
        return self.key + {_GT: ">", _LT: "<"}.get(op, op) + values


class LabelSelector:
    """An AND of requirements (sorted by key, as kube keeps them), or the selector that matches nothing."""

    __slots__ = ("_check", "matches_nothing", "requirements")

    def __init__(self, requirements: Sequence[Requirement] = (), matches_nothing: bool = False) -> None:
        self.requirements = tuple(sorted(requirements, key=lambda r: r.key))
        self.matches_nothing = matches_nothing
        self._check = _selector_check(self.requirements, matches_nothing)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels (None = no labels) is selected."""
        return self._check(labels if labels is not None else _NO_LABELS)

    @property
    def empty(self) -> bool:
        """Selects everything (kube's Selector.Empty)."""
        return not self.requirements and not self.matches_nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})" if not self.matches_nothing else "LabelSelector(<nothing>)"


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a `labelSelector` query value (`a=b,c in (d,e),!f,g>3`); SelectorError where kube fails."""
    return LabelSelector(_LabelParser(text).parse())


def label_selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """`metav1.LabelSelectorAsSelector`: None selects nothing, `{}` (no labels, no expressions) everything."""
    if selector is None:
        return LabelSelector(matches_nothing=True)
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or ()
    requirements = [_new_requirement(k, _EQUALS, [v]) for k, v in sorted(match_labels.items())]
    for expr in expressions:
        operator = expr.get("operator", "")
        if operator not in _OBJECT_OPERATORS:
            raise SelectorError(f"{go_quote(operator)} is not a valid label selector operator")
        requirements.append(_new_requirement(expr.get("key", ""), _OBJECT_OPERATORS[operator], expr.get("values")))
    return LabelSelector(requirements)


def selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """A `metav1.LabelSelector` as a string (a Scale's `status.selector`): `app=web`, `app in (a,b)`."""
    return str(label_selector_from_object(selector))


_NO_LABELS: Mapping[str, str] = {}


def _selector_check(requirements: tuple[Requirement, ...], nothing: bool) -> Callable[[Mapping[str, str]], bool]:
    if nothing:
        return lambda labels: False
    return all_of([_requirement_check(r) for r in requirements])


def all_of(predicates: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    """One predicate that holds when all do, as nested closures (cheaper per call than all() over a tuple)."""
    if not predicates:
        return lambda subject: True
    combined = predicates[0]
    for predicate in predicates[1:]:
        combined = _both(combined, predicate)
    return combined


def _both(first: Callable[[Any], bool], second: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda subject: first(subject) and second(subject)


def _requirement_check(r: Requirement) -> Callable[[Mapping[str, str]], bool]:
    """A closure per operator: the per-object cost is one dict lookup and one comparison."""
    key, op = r.key, r.operator
    if op in (_EQUALS, _DOUBLE_EQUALS, _IN):
        if len(r.values) == 1:
            value = r.values[0]
            return lambda labels: labels.get(key) == value
        values = frozenset(r.values)
        return lambda labels: labels.get(key) in values
    if op in (_NOT_EQUALS, _NOT_IN):
        excluded = frozenset(r.values)
        return lambda labels: labels.get(key) not in excluded
    if op == _EXISTS:
        return lambda labels: key in labels
    if op == _DOES_NOT_EXIST:
        return lambda labels: key not in labels
    bound = _parse_int64(r.values[0]) if len(r.values) == 1 else None
    if bound is None:
        return lambda labels: False
    greater = op == _GT

    def compare(labels: Mapping[str, str]) -> bool:
        value = labels.get(key)
        number = _parse_int64(value) if value is not None else None
        if number is None:
            return False
        return number > bound if greater else number < bound

    return compare


_INT64 = re.compile(r"[+-]?[0-9]+\Z")


def _parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): ASCII digits with an optional sign, within int64."""
    if not _INT64.match(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def _new_requirement(key: str, op: str, values: Sequence[str] | None) -> Requirement:
    """`labels.NewRequirement`: validates the key, the value count for the operator, and every value."""
    values = list(values or ())
    errors = []
    if key_error := _label_key_error(key, "key"):
        errors.append(key_error)
    if op in (_IN, _NOT_IN) and not values:
        errors.append(_invalid("values", values, "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (_EQUALS, _DOUBLE_EQUALS, _NOT_EQUALS) and len(values) != 1:
        errors.append(_invalid("values", values, "exact-match compatibility requires one single value"))
    elif op in (_EXISTS, _DOES_NOT_EXIST) and values:
        errors.append(_invalid("values", values, "values set must be empty for exists and does not exist"))
    elif op in (_GT, _LT):
        if len(values) != 1:
            errors.append(_invalid("values", values, "for 'Gt', 'Lt' operators, exactly one value is required"))
        errors.extend(
            _invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
            for i, v in enumerate(values)
            if _parse_int64(v) is None
        )
    for i, value in enumerate(values):
        if problems := _label_value_problems(value):
            errors.append(_invalid(f"values[{i}][{key}]", value, "; ".join(problems)))
    if errors:
        raise SelectorError(_aggregate(errors))
    return Requirement(key, op, tuple(values))


class _LabelParser:
    """kube's label selector lexer + recursive-descent parser, with its exact error messages."""

    _SPECIAL = frozenset("=!(),><")
    _WHITESPACE = frozenset(" \t\r\n")
    _SYMBOLS = frozenset(("=", "==", "!", "!=", "(", ")", ",", ">", "<"))
    _KEYWORDS = frozenset((_IN, _NOT_IN))
    _OPERATORS = {
        "in": _IN,
        "notin": _NOT_IN,
        "=": _EQUALS,
        "==": _DOUBLE_EQUALS,
        "!=": _NOT_EQUALS,
        ">": _GT,
        "<": _LT,
    }
    _END, _IDENT = "end", "ident"

    def __init__(self, text: str) -> None:
        self.tokens = self._lex(text)
        self.position = 0

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._lookahead()
            if kind == self._END:
                return requirements
            if kind not in (self._IDENT, "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except SelectorError as exc:
                raise SelectorError(f"unable to parse requirement: {exc}") from None
            kind, literal = self._consume()
            if kind == self._END:
                return requirements
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self._lookahead()
            if kind not in (self._IDENT, "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        operator = ""
        kind, key = self._consume()
        if kind == "!":
            operator = _DOES_NOT_EXIST
            kind, key = self._consume()
        if kind != self._IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        if key_error := _label_key_error(key, "<nil>"):
            raise SelectorError(key_error)
        if operator == _DOES_NOT_EXIST:
            return _new_requirement(key, _DOES_NOT_EXIST, ())
        if self._lookahead()[0] in (self._END, ","):
            return _new_requirement(key, _EXISTS, ())
        operator = self._operator()
        values = self._value_set() if operator in (_IN, _NOT_IN) else self._exact_value()
        return _new_requirement(key, operator, sorted(values))

    def _operator(self) -> str:
        kind, literal = self._consume(keywords=True)
        operator = self._OPERATORS.get(kind)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}")
        return operator

    def _value_set(self) -> set[str]:
        kind, literal = self._consume()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self._lookahead()
        if kind == ")":  # "()" is the set holding the empty value
            self._consume()
            return {""}
        if kind not in (self._IDENT, ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            kind, literal = self._consume()
            if kind == self._IDENT:
                values.add(literal)
                after, after_literal = self._lookahead()
                if after == ",":
                    continue
                if after == ")":
                    self._consume()
                    return values
                raise SelectorError(f"found '{after_literal}', expected: ',' or ')'")
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")
            if not values:  # "(," starts with an empty value
                values.add("")
            after = self._lookahead()[0]
            if after == ")":  # ",)" ends with one
                values.add("")
                self._consume()
                return values
            if after == ",":  # ",," holds one
                self._consume()
                values.add("")

    def _exact_value(self) -> set[str]:
        if self._lookahead()[0] in (self._END, ","):
            return {""}
        kind, literal = self._consume()
        if kind != self._IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}

    def _lookahead(self) -> tuple[str, str]:
        return self.tokens[self.position]

    def _consume(self, keywords: bool = False) -> tuple[str, str]:
        """The next token; `in`/`notin` are operators only where an operator is expected."""
        kind, literal = self.tokens[self.position]
        self.position += 1
        if keywords and kind == self._IDENT and literal in self._KEYWORDS:
            return literal, literal
        return kind, literal

    @classmethod
    def _lex(cls, text: str) -> list[tuple[str, str]]:
        tokens = []
        i, n = 0, len(text)
        while True:
            while i < n and text[i] in cls._WHITESPACE:
                i += 1
            if i >= n:
                tokens.append((cls._END, ""))
                return tokens
            if text[i] in cls._SPECIAL:
                # the longest run of special characters that is still a symbol ("!=" but "=" then "(")
                end = i + 1
                while end < n and text[end] in cls._SPECIAL and text[i : end + 1] in cls._SYMBOLS:
                    end += 1
                tokens.append((text[i:end], text[i:end]))
            else:
                end = i
                while end < n and text[end] not in cls._SPECIAL and text[end] not in cls._WHITESPACE:
                    end += 1
                tokens.append((cls._IDENT, text[i:end]))
            i = end


# -- label key / value validation (k8s.io/apimachinery/pkg/util/validation) ----------------------------------

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT + r"\Z")
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT + r"\Z")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT + r"\Z")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    """validation.RegexError, spacing quirks included."""
    listed = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {listed}regex used for validation is '{fmt}')"


def _label_key_problems(key: str) -> list[str]:
    """validation.IsQualifiedName."""
    problems = []
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                problems.append("prefix part must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN.match(prefix):
                problems.append(
                    "prefix part " + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME.match(name):
        problems.append(
            "name part " + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return problems


def _label_value_problems(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        problems.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return problems


def _label_key_error(key: str, path: str) -> str | None:
    problems = _label_key_problems(key)
    return _invalid(path, key, "; ".join(problems)) if problems else None


def _invalid(path: str, value: str | list[str], detail: str) -> str:
    """field.Invalid(...).Error(): `path: Invalid value: "v": detail` (lists as JSON, empty lists as null)."""
    if isinstance(value, str):
        shown = go_quote(value)
    else:
        shown = json.dumps(value, separators=(",", ":")) if value else "null"
    return f"{path}: Invalid value: {shown}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message alone, several de-duplicated inside brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# -- field selectors -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One `field=value` (operator `=`; `==` is the same) or `field!=value` term, value unescaped."""

    field: str
    operator: str
    value: str


class FieldSelector:
    """An AND of field terms in kube's order (raw terms sorted): the order of terms in a query is moot."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: Sequence[FieldRequirement] = ()) -> None:
        self.requirements = tuple(requirements)

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object with these selectable fields is selected (an absent field reads as "")."""
        return all((fields.get(r.field, "") == r.value) == (r.operator == "=") for r in self.requirements)

    def requires_exact_match(self, field: str) -> str | None:
        """The value an `=` term demands of this field, if any (so `metadata.name` can be read directly)."""
        return next((r.value for r in self.requirements if r.field == field and r.operator == "="), None)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(f"{r.field}{r.operator}{_escape_field_value(r.value)}" for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a `fieldSelector` query value (`a=b,c!=d`, `\\,` `\\=` `\\\\` escapes); raises SelectorError."""
    requirements = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        for i in range(len(term)):
            op = next((o for o in ("!=", "==", "=") if term.startswith(o, i)), None)
            if op is not None:
                field, raw = term[:i], term[i + len(op) :]
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        requirements.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape_field_value(raw)))
    return FieldSelector(requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped; escapes stay in the terms."""
    if not text:
        return []
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _unescape_field_value(raw: str) -> str:
    if not any(ch in raw for ch in "\\,="):
        return raw
    out, escaped = [], False
    for ch in raw:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
