"""Resource quantities (`500m`, `1Gi`, `129e6`) parsed and printed as apimachinery's `resource.Quantity`.

The API server re-serialises every quantity in canonical form (`0.5` -> `500m`, `1024Mi` -> `1Gi`,
`1000` -> `1k`), and resource lists are rounded up to milli precision first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SUFFIX_ERROR = "unable to parse quantity's suffix"

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_SHAPE = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?([eEinumkKMGTP]*[-+]?\d*)").fullmatch
_DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIXES = {e: s for s, e in _DECIMAL_EXPONENTS.items()}
_BINARY_EXPONENTS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_MAX = Fraction(2**63 - 1)
_NANO = 10**9


class QuantityError(ValueError):
    """A string kube cannot decode as a quantity (the message is kube's)."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact value and the notation it was written in (which the canonical form keeps)."""

    value: Fraction
    format: str

    def __str__(self) -> str:
        return canonical(self)


def parse_quantity(raw: Any) -> Quantity:
    """resource.ParseQuantity; JSON numbers are accepted as kube accepts unquoted quantities."""
    text = raw if isinstance(raw, str) else _number_text(raw)
    text = text.strip()
    if not text:
        raise QuantityError(FORMAT_ERROR)
    shape = _SHAPE(text)
    if shape is None:
        raise QuantityError(FORMAT_ERROR)
    sign, whole, fraction, suffix = shape.groups()
    fraction = fraction or ""
    number = Fraction(int((whole + fraction) or "0"), 10 ** len(fraction))
    if suffix in _DECIMAL_EXPONENTS:
        fmt, scale = DECIMAL_SI, Fraction(10) ** _DECIMAL_EXPONENTS[suffix]
    elif suffix in _BINARY_EXPONENTS:
        fmt, scale = BINARY_SI, Fraction(2 ** _BINARY_EXPONENTS[suffix])
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?\d+", suffix[1:]):
        fmt, scale = DECIMAL_EXPONENT, Fraction(10) ** int(suffix[1:])
    else:
        raise QuantityError(SUFFIX_ERROR)
    value = _round_up(number * scale, _NANO)
    value = min(value, _MAX)
    return Quantity(-value if sign == "-" else value, fmt)


def canonical(q: Quantity) -> str:
    """Quantity.String(): the form kube stores and returns."""
    value = q.value
    if value == 0:
        return "0"
    sign, magnitude = ("-", -value) if value < 0 else ("", value)
    if q.format == BINARY_SI and magnitude >= 1024 and magnitude.denominator == 1:
        number, exponent = magnitude.numerator, 0
        while number % 1024 == 0:
            number //= 1024
            exponent += 1
        return f"{sign}{number}{_BINARY_SUFFIXES[exponent]}"
    digits = 0
    while (magnitude * 10**digits).denominator != 1:
        digits += 1
    mantissa, exponent = (magnitude * 10**digits).numerator, -digits
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3  # down to a multiple of three, as AsCanonicalBytes does
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if q.format == DECIMAL_EXPONENT:
        return f"{sign}{mantissa}" + (f"e{exponent}" if exponent else "")
    return f"{sign}{mantissa}{_DECIMAL_SUFFIXES[exponent]}"


def canonicalize_resource_list(resources: dict[str, Any]) -> None:
    """SetDefaults_ResourceList + re-serialisation: each value rounded up to milli, in canonical form."""
    for name, raw in resources.items():
        q = parse_quantity(raw)
        resources[name] = canonical(Quantity(_round_up(q.value, 1000), q.format))


def canonicalize(raw: Any) -> str:
    """A single quantity field (a divisor, a size limit) in canonical form."""
    return canonical(parse_quantity(raw))


def _round_up(value: Fraction, per_unit: int) -> Fraction:
    """Round away from zero to 1/per_unit (inf.RoundUp)."""
    scaled = value * per_unit
    if scaled.denominator == 1:
        return value
    magnitude = -(-abs(scaled.numerator) // scaled.denominator)
    return Fraction(magnitude if value > 0 else -magnitude, per_unit)


def _number_text(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise QuantityError(FORMAT_ERROR)
    return repr(raw)
