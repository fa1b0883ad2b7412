"""Go's text forms that kube writes and k8py writes the same way: one home.

``go_duration`` is Go's ``time.Duration.String()`` (``850ns``, ``1.5ms``, ``2.5s``, ``1m30s``,
``5m0s``, ``1h2m3.5s``), which shows in kubelet's back-off messages, kube-apiserver's request log,
gRPC probe errors, ``metav1.Duration`` fields (metrics-server's ``window``) and protobuf's
duration fields. ``parse_duration`` is Go's ``time.ParseDuration`` (``1m30s``, ``500ms``, ``-1.5h``),
which every duration flag and field kube takes goes through.
"""

from __future__ import annotations

import re

__all__ = ["DurationError", "go_duration", "go_duration_ns", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"[0-9]*(\.[0-9]*)?")
_UNIT = re.compile(r"[^0-9.]*")


class DurationError(ValueError):
    """Go's error for a malformed duration (``time: invalid duration "x"``)."""


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds: a signed sequence of decimal numbers, each with
    a unit (ns, us/\u00b5s, ms, s, m, h); ``0`` alone needs none."""
    orig, s, sign = text, text, 1.0
    if s in ("0", "+0", "-0"):
        return 0.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if not s:
        raise DurationError(f'time: invalid duration "{orig}"')
    total = 0.0
    while s:
        num = _NUMBER.match(s).group(0)  # type: ignore[union-attr]  # matches the empty string at worst
        if not num or num == ".":
            raise DurationError(f'time: invalid duration "{orig}"')
        s = s[len(num):]
        unit = _UNIT.match(s).group(0)  # type: ignore[union-attr]
        if not unit:
            raise DurationError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise DurationError(f'time: unknown unit "{unit}" in duration "{orig}"')
        s = s[len(unit):]
        total += float(num) * _UNITS[unit]
    return sign * total


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of ``seconds`` (rounded to the nanosecond)."""
    return go_duration_ns(round(seconds * 1e9))


def go_duration_ns(ns: int) -> str:
    """Go's ``time.Duration.String()`` of ``ns`` nanoseconds."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 1_000_000)}ms"
    h, rest = divmod(ns, 3_600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return f"{sign}{out}{_frac(rest, 10**9)}s"


def _frac(n: int, unit: int) -> str:
    whole, part = divmod(n, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{part:0{digits}d}".rstrip("0")
