"""Kubernetes ``resource.Quantity``: parsing, canonical formatting and comparison.

Follows ``k8s.io/apimachinery/pkg/api/resource``: a quantity is a signed decimal
number with an optional suffix, either binary SI (``Ki`` .. ``Ei``), decimal SI
(``n u m "" k M G T P E``) or a decimal exponent (``e3``, ``E-2``). Values are
exact (held as :class:`fractions.Fraction`); like Kubernetes, parsing rounds a
non-zero magnitude *up* to the nearest nano unit, and formatting gives the
canonical string the API server would write back (``"0.5"`` -> ``"500m"``,
``"1000m"`` -> ``"1"``, ``"1536Mi"`` stays, ``"1e3"`` -> ``"1e3"``).
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

# The message Kubernetes gives for a malformed quantity (ErrFormatWrong).
FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SUFFIX_ERROR = "unable to parse quantity's suffix"
NUMERIC_ERROR = "unable to parse numeric part of quantity"

_NANO = Fraction(1, 10**9)
_MILLI_SCALE = -3
# Binary quantities are capped at 2^63-1 like Kubernetes' maxAllowed.
_MAX_ALLOWED = Fraction(2**63 - 1)


class Format(str, enum.Enum):
    DECIMAL_EXPONENT = "DecimalExponent"
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"


_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIXES.items()}
_BIN_BY_EXP = {0: "", **{v: k for k, v in _BIN_SUFFIXES.items()}}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; ``str(e)`` is Kubernetes' message."""


@dataclass(frozen=True, slots=True)
class Quantity:
    value: Fraction
    format: Format = Format.DECIMAL_SI

    # -- construction -------------------------------------------------------
    @staticmethod
    def parse(s: Any) -> Quantity:
        return parse_quantity(s)

    # -- comparison ---------------------------------------------------------
    def cmp(self, other: Quantity) -> int:
        return (self.value > other.value) - (self.value < other.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def is_zero(self) -> bool:
        return self.value == 0

    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)

    # -- values ---------------------------------------------------------------
    def milli_value(self) -> int:
        """The value times 1000, rounded up (``MilliValue``)."""
        return math.ceil(self.value * 1000)

    def int_value(self) -> int:
        """The value rounded up to an integer (``Value``)."""
        return math.ceil(self.value)

    def round_up(self, scale: int) -> Quantity:
        """Round the magnitude up to a multiple of 10**scale (``RoundUp``)."""
        unit = Fraction(10) ** scale
        q = abs(self.value) / unit
        if q.denominator == 1:
            return self
        mag = math.ceil(q) * unit
        return Quantity(mag if self.value > 0 else -mag, self.format)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    # -- formatting -----------------------------------------------------------
    def __str__(self) -> str:
        return format_quantity(self)


def _scan(s: str) -> tuple[bool, str, str, str]:
    """Split like Kubernetes' parseQuantityString: (positive, num, denom, suffix)."""
    positive = True
    pos = 0
    end = len(s)
    if pos < end and s[0] in "+-":
        positive = s[0] == "+"
        pos += 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos] in _DIGITS:
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_ERROR)
    return positive, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, Format]:
    """(base, exponent, format) for a suffix, like suffixer.interpret."""
    if suffix in _DEC_SUFFIXES:
        return 10, _DEC_SUFFIXES[suffix], Format.DECIMAL_SI
    if suffix in _BIN_SUFFIXES:
        return 2, _BIN_SUFFIXES[suffix], Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        rest = suffix[1:]
        body = rest[1:] if rest[:1] in "+-" else rest
        if body and all(c in _DIGITS for c in body):
            return 10, int(rest), Format.DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_ERROR)


@functools.lru_cache(maxsize=4096)
def _parse_str(s: str) -> Quantity:
    if not s:
        raise QuantityError(FORMAT_ERROR)
    positive, num, denom, suffix = _scan(s)
    base, exponent, fmt = _interpret(suffix)
    mag = Fraction(int(num + denom), 10 ** len(denom)) if (num + denom) else Fraction(0)
    if base == 10:
        mag *= Fraction(10) ** exponent
    else:
        mag *= 2**exponent
    if mag != 0:
        # Kubernetes rounds non-zero values up to the smallest representable unit (1n).
        q = mag / _NANO
        if q.denominator != 1:
            mag = math.ceil(q) * _NANO
    if fmt is Format.BINARY_SI and mag > _MAX_ALLOWED:
        mag = _MAX_ALLOWED
    if fmt is Format.BINARY_SI and 0 < mag < 1:
        fmt = Format.DECIMAL_SI
    return Quantity(mag if positive else -mag, fmt)


def parse_quantity(s: Any) -> Quantity:
    """Parse a quantity as it appears in JSON (a string, or a number YAML left unquoted)."""
    if isinstance(s, bool):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(s, int):
        return Quantity(Fraction(s), Format.DECIMAL_SI)
    if isinstance(s, float):
        if not math.isfinite(s):
            raise QuantityError(FORMAT_ERROR)
        s = repr(s)
    if not isinstance(s, str):
        raise QuantityError(FORMAT_ERROR)
    return _parse_str(s.strip())


def is_valid(s: Any) -> bool:
    try:
        parse_quantity(s)
    except QuantityError:
        return False
    return True


def _remove_factors(n: int, base: int) -> tuple[int, int]:
    times = 0
    if n == 0:
        return 0, 0
    while n % base == 0:
        n //= base
        times += 1
    return n, times


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with exponent a multiple of 3, mantissa an integer
    with as few digits as possible (AsCanonicalBytes)."""
    # value is a multiple of 1e-9 after parsing; find the smallest exponent
    # giving an integer mantissa.
    exp = 0
    v = value
    while v.denominator != 1:
        v *= 10
        exp -= 1
    mant, times = _remove_factors(v.numerator, 10)
    exp += times
    r = exp % 3  # python modulo: 0..2
    if r:
        mant *= 10**r
        exp -= r
    return mant, exp


def format_quantity(q: Quantity) -> str:
    """The canonical string, as Kubernetes serializes a Quantity."""
    if q.value == 0:
        return "0"
    fmt = q.format
    if fmt is Format.BINARY_SI and (-1024 < q.value < 1024 or q.value.denominator != 1):
        # small or fractional binary values print in decimal, like CanonicalizeBytes
        fmt = Format.DECIMAL_SI
    if fmt is Format.BINARY_SI:
        n = q.value.numerator
        mant, times = _remove_factors(abs(n), 1024)
        exp = times * 10
        while exp not in _BIN_BY_EXP:
            mant *= 1024
            exp -= 10
        sign = "-" if n < 0 else ""
        return f"{sign}{mant}{_BIN_BY_EXP[exp]}"
    sign = "-" if q.value < 0 else ""
    mant, exp = _decimal_parts(abs(q.value))
    if fmt is Format.DECIMAL_EXPONENT:
        return f"{sign}{mant}" + (f"e{exp}" if exp else "")
    if exp in _DEC_BY_EXP:
        return f"{sign}{mant}{_DEC_BY_EXP[exp]}"
    if exp < -9:  # cannot happen after rounding to 1n; keep for safety
        return f"{sign}{mant}e{exp}"
    # Beyond exa: Kubernetes falls back to an exponent
    return f"{sign}{mant}e{exp}"


def canonicalize(s: Any, round_milli: bool = False) -> Any:
    """The canonical form of quantity ``s``; invalid input is returned unchanged.

    ``round_milli`` applies ``SetDefaults_ResourceList``'s rounding of every
    resource list value up to milli precision.
    """
    try:
        q = parse_quantity(s)
    except QuantityError:
        return s
    if round_milli:
        q = q.round_up(_MILLI_SCALE)
    return format_quantity(q)
