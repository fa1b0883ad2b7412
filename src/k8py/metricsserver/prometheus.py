"""A reader of the Prometheus text exposition format (version 0.0.4), what kubelet's
``/metrics/resource`` answers and what metrics-server reads with Prometheus' ``textparse``.

Each sample line is ``name{label="value",...} value [timestamp]``: label values take the escapes
``\\\\``, ``\\"`` and ``\\n``; the value is a Go float (``NaN``, ``+Inf``, ``-Inf``, exponents);
the optional timestamp is milliseconds since the epoch. ``#`` lines (``HELP``, ``TYPE``, comments)
and blank lines carry no samples. A malformed line raises :class:`ParseError` naming its line
number, as textparse fails the whole scrape (with ``names``, only the lines of those families are
read: the others are skipped unread, a quarter less time for a kubelet's answer). Nothing here
does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass

__all__ = ["ParseError", "Sample", "parse"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SPECIAL = {"nan": float("nan"), "+inf": float("inf"), "inf": float("inf"), "-inf": float("-inf")}


class ParseError(ValueError):
    """The text is not in the exposition format; the message names the line."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None


def _float(s: str, lineno: int) -> float:
    v = _SPECIAL.get(s.lower())
    if v is not None:
        return v
    try:
        return float(s)
    except ValueError:
        raise ParseError(f"line {lineno}: {s!r} is not a float") from None


# one label pair and what follows it: name, raw value (escapes kept), the separator ("," or "}")
_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*([,}])?')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


def _unescape(value: str, name: str, lineno: int) -> str:
    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c not in _ESCAPES:
            raise ParseError(f"line {lineno}: invalid escape \\{c} in label {name}")
        return _ESCAPES[c]

    return _ESCAPE.sub(one, value) if "\\" in value else value


def _labels(line: str, i: int, lineno: int) -> tuple[dict[str, str], int]:
    """The labels of ``{...}`` starting at ``line[i] == "{"``; returns them and the index after ``}``."""
    labels: dict[str, str] = {}
    i += 1
    while True:
        m = _PAIR.match(line, i)
        if m is None:
            j = i
            while j < len(line) and line[j] in " \t":
                j += 1
            if line[j:j + 1] == "}":  # no (more) labels: {} or a trailing comma
                return labels, j + 1
            raise ParseError(f"line {lineno}: expected label=\"value\" at column {i + 1}")
        name = m.group(1)
        if name in labels:
            raise ParseError(f"line {lineno}: label {name} given twice")
        labels[name] = _unescape(m.group(2), name, lineno)
        i = m.end()
        if m.group(3) == "}":
            return labels, i
        if m.group(3) is None:
            raise ParseError(f"line {lineno}: expected , or }} after label {name}")


def parse(text: str, names: Collection[str] | None = None) -> Iterator[Sample]:
    """The samples of ``text``, in order; with ``names``, only those families' (the others'
    lines are not read past their name)."""
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if m is None:
            raise ParseError(f"line {lineno}: expected a metric name")
        name = m.group()
        if names is not None and name not in names:
            continue
        i = m.end()
        labels: dict[str, str] = {}
        j = i
        while j < len(line) and line[j] in " \t":
            j += 1
        if j < len(line) and line[j] == "{":
            labels, i = _labels(line, j, lineno)
        rest = line[i:].split()
        if not rest or len(rest) > 2 or (i < len(line) and line[i] not in " \t"):
            raise ParseError(f"line {lineno}: expected a value (and an optional timestamp) after {name}")
        value = _float(rest[0], lineno)
        ts: int | None = None
        if len(rest) == 2:
            try:
                ts = int(rest[1], 10)
            except ValueError:
                raise ParseError(f"line {lineno}: timestamp {rest[1]!r} is not an integer") from None
        yield Sample(name, labels, value, ts)
