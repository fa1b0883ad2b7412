"""A reader of the Prometheus text exposition format (version 0.0.4), what kubelet's
``/metrics/resource`` answers and what metrics-server reads with Prometheus' ``textparse``.

Each sample line is ``name{label="value",...} value [timestamp]``: label values take the escapes
``\\\\``, ``\\"`` and ``\\n``; the value is a Go float (``NaN``, ``+Inf``, ``-Inf``, exponents);
the optional timestamp is milliseconds since the epoch. ``#`` lines (``HELP``, ``TYPE``, comments)
and blank lines carry no samples. A malformed line raises :class:`ParseError` naming its line
number, as textparse fails the whole scrape. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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


def _labels(line: str, i: int, lineno: int) -> tuple[dict[str, str], int]:
    """The labels of ``{...}`` starting at ``line[i] == "{"``; returns them and the index after ``}``."""
    labels: dict[str, str] = {}
    i += 1
    n = len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == "}":
            return labels, i + 1
        m = _LABEL.match(line, i)
        if m is None:
            raise ParseError(f"line {lineno}: expected a label name at column {i + 1}")
        name = m.group()
        i = m.end()
        while i < n and line[i] in " \t":
            i += 1
        if line[i:i + 1] != "=":
            raise ParseError(f'line {lineno}: expected ="..." after label {name}')
        i += 1
        while i < n and line[i] in " \t":
            i += 1
        if line[i:i + 1] != '"':
            raise ParseError(f'line {lineno}: expected ="..." after label {name}')
        i += 1
        out: list[str] = []
        while True:
            if i >= n:
                raise ParseError(f"line {lineno}: unterminated value of label {name}")
            ch = line[i]
            if ch == "\\":
                nxt = line[i + 1:i + 2]
                if nxt == "n":
                    out.append("\n")
                elif nxt in ('"', "\\"):
                    out.append(nxt)
                else:
                    raise ParseError(f"line {lineno}: invalid escape \\{nxt} in label {name}")
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            out.append(ch)
            i += 1
        if name in labels:
            raise ParseError(f"line {lineno}: label {name} given twice")
        labels[name] = "".join(out)
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == ",":
            i += 1
        elif i < n and line[i] != "}":
            raise ParseError(f"line {lineno}: expected , or }} after label {name}")


def parse(text: str) -> Iterator[Sample]:
    """The samples of ``text``, in order."""
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if m is None:
            raise ParseError(f"line {lineno}: expected a metric name")
        name = m.group()
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
