"""Label and field selectors, as ``k8s.io/apimachinery/pkg/labels`` and ``.../fields`` do them.

Three things live here:

* **Label selectors**: the string form sent as ``?labelSelector=`` (parsed with
  the same grammar and error texts as ``labels.Parse``), the ``LabelSelector``
  object form used in specs (``from_label_selector``, ``validate_label_selector``)
  and their formatting for printers (``format_label_selector``, ``format_labels``).
* **Field selectors**: the string form sent as ``?fieldSelector=`` (``fields.ParseSelector``,
  including ``\\,`` ``\\=`` ``\\\\`` escapes) and :class:`FieldLabels`, the type in
  which a kind declares the labels it accepts (its ``AddFieldLabelConversionFunc``: a
  label outside them is a 400 with kube's own text) and the field set its objects are
  matched on (its ``GetAttrs`` / ``ToSelectableFields``). The declarations themselves
  are the kinds' strategies' (``k8py.apiserver.registry``); here are only the labels every
  kind has, ``metadata.name`` and ``metadata.namespace`` (:data:`DEFAULT_FIELD_LABELS`).
* ``compile_selector`` -> :class:`ObjectSelector`, the ``SelectionPredicate`` that
  list and watch run per object. It only computes the fields the selector
  names, so the common cases (no field selector, or ``metadata.name=x``) cost a
  dict lookup or two.

Selectors and requirements are immutable; build them once per request or
watcher and call ``matches`` per object.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from k8py.api.errors import FieldError, StatusError, forbidden, invalid, required

# ---------------------------------------------------------------------------
# errors


class SelectorError(StatusError, ValueError):
    """A selector kube would reject: a 400 BadRequest carrying kube's message."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "BadRequest", message)


# ---------------------------------------------------------------------------
# label key / value validation: the same rules (and words) as object validation uses
from k8py.api.validation.meta import go_quote, is_qualified_name
from k8py.api.validation.meta import is_label_value as is_valid_label_value


def _field_invalid(path: str, value: str, detail: str) -> str:
    # field.Invalid(path, value, detail).Error()
    return f"{path}: Invalid value: {go_quote(value)}: {detail}"


def _aggregate(msgs: list[str]) -> str:
    # utilerrors.NewAggregate(...).Error(): one message as is, several as "[a, b]" (deduplicated)
    seen: list[str] = []
    for m in msgs:
        if m not in seen:
            seen.append(m)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


# ---------------------------------------------------------------------------
# label selectors

EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
IN: Final = "in"
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_BINARY_OPERATORS: Final = ("in", "notin", "=", "==", "!=", "gt", "lt")
_ALL_OPERATORS: Final = (*_BINARY_OPERATORS, "exists", "!")


def _parse_int(s: str) -> int | None:
    # strconv.ParseInt(s, 10, 64): optional sign, decimal digits only
    if not s or not re.fullmatch(r"[+-]?[0-9]+", s):
        return None
    v = int(s)
    return v if -(1 << 63) <= v < (1 << 63) else None


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key op values`` term (``labels.Requirement``)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    _set: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @staticmethod
    def new(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
        """``labels.NewRequirement``: validates key, operator and values (raises :class:`SelectorError`)."""
        vals = tuple(values)
        errs: list[str] = []
        key_errs = is_qualified_name(key)
        if key_errs:
            errs.append(_field_invalid("key", key, "; ".join(key_errs)))
        if operator in (IN, NOT_IN):
            if not vals:
                errs.append(f"values: Invalid value: {_go_slice(vals)}: for 'in', 'notin' operators, "
                            "values set can't be empty")
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                errs.append(f"values: Invalid value: {_go_slice(vals)}: exact-match compatibility requires "
                            "one single value")
        elif operator in (EXISTS, DOES_NOT_EXIST):
            if vals:
                errs.append(f"values: Invalid value: {_go_slice(vals)}: values set must be empty for exists "
                            "and does not exist")
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                errs.append(f"values: Invalid value: {_go_slice(vals)}: for 'Gt', 'Lt' operators, exactly one "
                            "value is required")
            for i, v in enumerate(vals):
                if _parse_int(v) is None:
                    errs.append(_field_invalid(f"values[{i}]", v,
                                               "for 'Gt', 'Lt' operators, the value must be an integer"))
        else:
            quoted = ", ".join(go_quote(o) for o in _ALL_OPERATORS)
            errs.append(f"operator: Unsupported value: {go_quote(operator)}: supported values: {quoted}")
        for i, v in enumerate(vals):
            verrs = is_valid_label_value(v)
            if verrs:
                errs.append(_field_invalid(f"values[{i}][{key}]", v, "; ".join(verrs)))
        if errs:
            raise SelectorError(_aggregate(errs))
        return Requirement(key, operator, vals, frozenset(vals))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            v = labels.get(self.key)
            return v is not None and v in self._set
        if op in (NOT_EQUALS, NOT_IN):
            v = labels.get(self.key)
            return v is None or v not in self._set
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        v = labels.get(self.key)
        if v is None:
            return False
        lv = _parse_int(v)
        rv = _parse_int(self.values[0]) if len(self.values) == 1 else None
        if lv is None or rv is None:
            return False
        return lv > rv if op == GREATER_THAN else lv < rv

    def __str__(self) -> str:
        op = self.operator
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op == EXISTS:
            return self.key
        vals = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        sym = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", GREATER_THAN: ">", LESS_THAN: "<"}.get(op)
        if sym is not None:
            return f"{self.key}{sym}{vals}"
        return f"{self.key} {op} ({vals})"


def _go_slice(vals: tuple[str, ...]) -> str:
    # %#v of a []string is how field.Invalid renders a non-string value
    return "[]string{" + ", ".join(go_quote(v) for v in vals) + "}"


class LabelSelector:
    """A compiled label selector (``labels.Selector``): AND of requirements.

    ``LabelSelector.everything()`` matches all, ``LabelSelector.nothing()`` matches
    none (what a nil ``*metav1.LabelSelector`` converts to).
    """

    __slots__ = ("_eq", "_nothing", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # Sorted by key, as labels.Parse / Selector.Add do, so String() is deterministic.
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = nothing
        # Fast path: a selector made only of equality terms (the common case) is a dict comparison.
        if all(r.operator in (EQUALS, DOUBLE_EQUALS) for r in self.requirements):
            self._eq: tuple[tuple[str, str], ...] | None = tuple((r.key, r.values[0]) for r in self.requirements)
        else:
            self._eq = None

    @classmethod
    def everything(cls) -> LabelSelector:
        return _EVERYTHING

    @classmethod
    def nothing(cls) -> LabelSelector:
        return _NOTHING

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (``Selector.Empty``)."""
        return not self._nothing and not self.requirements

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        eq = self._eq
        if labels is None:
            labels = {}
        if eq is not None:
            for k, v in eq:
                if labels.get(k) != v:
                    return False
            return True
        for r in self.requirements:
            if not r.matches(labels):
                return False
        return True

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must have for a match, if the selector pins exactly one."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})" if not self._nothing else "LabelSelector(<nothing>)"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelSelector) and self.requirements == other.requirements
                and self._nothing == other._nothing)

    def __hash__(self) -> int:
        return hash((self.requirements, self._nothing))


_EVERYTHING = LabelSelector()
_NOTHING = LabelSelector(nothing=True)


# --- the string grammar (labels.Parse) ---

_SPECIAL = frozenset("=!(),><")
_WS = frozenset(" \t\r\n")
_T_ERROR, _T_END, _T_CLOSE, _T_COMMA, _T_NOT, _T_DEQ, _T_EQ, _T_GT, _T_ID, _T_IN, _T_LT, _T_NEQ, _T_NOTIN, \
    _T_OPEN = range(14)
_STRING_TO_TOKEN: Final = {")": _T_CLOSE, ",": _T_COMMA, "!": _T_NOT, "==": _T_DEQ, "=": _T_EQ, ">": _T_GT,
                           "in": _T_IN, "<": _T_LT, "!=": _T_NEQ, "notin": _T_NOTIN, "(": _T_OPEN}


def _lex(s: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WS:
            i += 1
        if i >= n:
            out.append((_T_END, ""))
            return out
        ch = s[i]
        if ch in _SPECIAL:
            # longest run of special characters that is still a known operator
            buf = ""
            last: tuple[int, str] | None = None
            while i < n and s[i] in _SPECIAL:
                buf += s[i]
                tok = _STRING_TO_TOKEN.get(buf)
                if tok is not None:
                    last = (tok, buf)
                    i += 1
                elif last is not None:
                    break
                else:
                    i += 1
            if last is None:
                out.append((_T_ERROR, f"error expected: keyword found '{buf}'"))
            else:
                out.append(last)
        else:
            j = i
            while j < n and s[j] not in _SPECIAL and s[j] not in _WS:
                j += 1
            word = s[i:j]
            i = j
            out.append((_STRING_TO_TOKEN.get(word, _T_ID), word))


class _Parser:
    __slots__ = ("items", "pos")

    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    def lookahead(self, values: bool) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        if values and tok in (_T_IN, _T_NOTIN):
            tok = _T_ID
        return tok, lit

    def consume(self, values: bool) -> tuple[int, str]:
        tok, lit = self.lookahead(values)
        self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (_T_ID, _T_NOT):
                try:
                    reqs.append(self.parse_requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e.message}") from None
                t, lit2 = self.consume(True)
                if t == _T_END:
                    return reqs
                if t == _T_COMMA:
                    t2, l2 = self.lookahead(True)
                    if t2 not in (_T_ID, _T_NOT):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit2}', expected: ',' or 'end of string'")
            elif tok == _T_END:
                return reqs
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def parse_requirement(self) -> Requirement:
        operator = ""
        tok, lit = self.consume(True)
        if tok == _T_NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self.consume(True)
        if tok != _T_ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        key_errs = is_qualified_name(lit)
        if key_errs:
            # the parser validates the key with a nil field path, which Go prints as "<nil>"
            raise SelectorError(_field_invalid("<nil>", lit, "; ".join(key_errs)))
        key = lit
        t, _ = self.lookahead(True)
        if t in (_T_END, _T_COMMA):
            return Requirement.new(key, operator or EXISTS)
        if operator == DOES_NOT_EXIST:
            return Requirement.new(key, operator)
        tok, lit = self.consume(False)
        op = {_T_IN: IN, _T_EQ: EQUALS, _T_DEQ: DOUBLE_EQUALS, _T_GT: GREATER_THAN, _T_LT: LESS_THAN,
              _T_NOTIN: NOT_IN, _T_NEQ: NOT_EQUALS}.get(tok)
        if op is None:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        if op in (IN, NOT_IN):
            values = self.parse_values()
        else:
            values = self.parse_exact_value()
        return Requirement.new(key, op, sorted(values))

    def parse_values(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != _T_OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (_T_ID, _T_COMMA):
            s = self.parse_identifiers_list()
            if self.consume(True)[0] != _T_CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return s
        if tok == _T_CLOSE:
            self.consume(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        s: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == _T_ID:
                s.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSE:
                    return s
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:
                if not s:
                    s.add("")
                tok2, _ = self.lookahead(True)
                if tok2 == _T_CLOSE:
                    s.add("")
                    return s
                if tok2 == _T_COMMA:
                    s.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        tok, _ = self.lookahead(True)
        if tok in (_T_END, _T_COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok == _T_ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse ``?labelSelector=`` (``labels.Parse``); raises :class:`SelectorError` (400) on bad input.

    ``None`` and ``""`` give the everything selector. Results are cached (the
    same few selector strings arrive over and over from controllers and kubectl);
    errors are not.
    """
    if not s:
        return _EVERYTHING
    return _parse_label_selector_cached(s)


@functools.lru_cache(maxsize=2048)
def _parse_label_selector_cached(s: str) -> LabelSelector:
    return LabelSelector(_Parser(s).parse())


# --- the object form (metav1.LabelSelector) ---

_OBJECT_OPS: Final = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def from_label_selector(ls: Mapping[str, Any] | None) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector``: nil matches nothing, ``{}`` matches everything.

    Raises :class:`SelectorError` for an operator kube does not know or bad keys/values.
    """
    if ls is None:
        return _NOTHING
    match_labels = ls.get("matchLabels") or {}
    exprs = ls.get("matchExpressions") or []
    if not match_labels and not exprs:
        return _EVERYTHING
    reqs = [Requirement.new(k, EQUALS, (v,)) for k, v in match_labels.items()]
    for e in exprs:
        op = e.get("operator", "")
        mapped = _OBJECT_OPS.get(op)
        if mapped is None:
            raise SelectorError(f"{go_quote(op)} is not a valid label selector operator")
        reqs.append(Requirement.new(e.get("key", ""), mapped, list(e.get("values") or ())))
    return LabelSelector(reqs)


def label_selector_string(ls: Mapping[str, Any] | None) -> str:
    """``LabelSelectorAsSelector(ls).String()`` (raises :class:`SelectorError` if invalid)."""
    return str(from_label_selector(ls))


def format_label_selector(ls: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: ``"<none>"`` when empty, ``"<error>"`` when invalid."""
    try:
        s = str(from_label_selector(ls))
    except SelectorError:
        return "<error>"
    return s or "<none>"


def format_labels(labels: Mapping[str, str] | None) -> str:
    """``labels.FormatLabels``: ``a=b,c=d`` sorted by key, ``"<none>"`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """``labels.SelectorFromSet``: equality on every pair; empty or None matches everything."""
    if not labels:
        return _EVERYTHING
    return LabelSelector(Requirement(k, EQUALS, (v,), frozenset((v,))) for k, v in labels.items())


def validate_label_name(name: str, path: str) -> list[FieldError]:
    return [invalid(path, name, msg) for msg in is_qualified_name(name)]


def validate_labels(labels: Mapping[str, str] | None, path: str) -> list[FieldError]:
    """``ValidateLabels``: keys are qualified names, values valid label values (errors at ``path``)."""
    errs: list[FieldError] = []
    for k, v in (labels or {}).items():
        errs.extend(validate_label_name(k, path))
        errs.extend(invalid(path, v, msg) for msg in is_valid_label_value(v))
    return errs


def validate_label_selector(ls: Mapping[str, Any] | None, path: str,
                            allow_invalid_label_value: bool = False) -> list[FieldError]:
    """``metav1validation.ValidateLabelSelector`` for a ``LabelSelector`` object at ``path``."""
    if ls is None:
        return []
    errs = validate_labels(ls.get("matchLabels"), f"{path}.matchLabels")
    for i, e in enumerate(ls.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = e.get("operator", "")
        values = e.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{p}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        errs.extend(validate_label_name(e.get("key", ""), f"{p}.key"))
        if not allow_invalid_label_value:
            for j, v in enumerate(values):
                errs.extend(invalid(f"{p}.values[{j}]", v, msg) for msg in is_valid_label_value(v))
    return errs


# ---------------------------------------------------------------------------
# field selectors


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    operator: str  # "=" (also for "==") or "!="
    value: str

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.operator == NOT_EQUALS else '='}{escape_field_value(self.value)}"


class FieldSelector:
    """A parsed field selector (``fields.Selector``): AND of ``field=value`` / ``field!=value``."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.field for r in self.requirements))

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Match a field set; a field missing from the set reads as ``""`` (``fields.Set.Get``)."""
        for r in self.requirements:
            v = fields.get(r.field, "")
            if (v == r.value) != (r.operator == EQUALS):
                return False
        return True

    def requires_exact_match(self, field_name: str) -> str | None:
        for r in self.requirements:
            if r.field == field_name and r.operator == EQUALS:
                return r.value
        return None

    def transform(self, fn: Callable[[str, str], tuple[str, str]]) -> FieldSelector:
        """``Selector.Transform``: map every (field, value); ``fn`` raises to reject."""
        out = []
        for r in self.requirements:
            f, v = fn(r.field, r.value)
            out.append(FieldRequirement(f, r.operator, v))
        return FieldSelector(out)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSelector) and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


def escape_field_value(s: str) -> str:
    """``fields.EscapeValue``."""
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if "\\" not in s and "," not in s and "=" not in s:
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c in "\\,=":
                out.append(c)
            else:
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            in_slash = False
            continue
        if c == "\\":
            in_slash = True
        elif c in ",=":
            # Go formats the rune with %v, i.e. as its code point number
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_field_terms(s: str) -> list[str]:
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def parse_field_selector(s: str | None) -> FieldSelector:
    """Parse ``?fieldSelector=`` (``fields.ParseSelector``); raises :class:`SelectorError` (400)."""
    if not s:
        return _EVERYTHING_FIELDS
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_field_terms(s)):
        if not part:
            continue
        for i in range(len(part)):
            rest = part[i:]
            if rest.startswith("!="):
                lhs, op, rhs = part[:i], NOT_EQUALS, part[i + 2:]
                break
            if rest.startswith("=="):
                lhs, op, rhs = part[:i], EQUALS, part[i + 2:]
                break
            if rest.startswith("="):
                lhs, op, rhs = part[:i], EQUALS, part[i + 1:]
                break
        else:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
        reqs.append(FieldRequirement(lhs, op, _unescape_field_value(rhs)))
    return FieldSelector(reqs)


_EVERYTHING_FIELDS = FieldSelector()


# --- field labels -------------------------------------------------------------
#
# Which labels a kind accepts and how its objects are read is the kind's own declaration
# (``Strategy.field_labels`` in ``k8py.apiserver.registry``, as kube's
# AddFieldLabelConversionFunc and ToSelectableFields sit with each kind). What is here is
# the machinery: the FieldLabels type, getters for plain paths, and the labels every kind
# has (metadata.name, metadata.namespace). Nothing outside the API server evaluates field
# selectors (client/fake.py and the informers send them to the API), so no kind's labels
# are needed below it.

Getter = Callable[[dict[str, Any]], str]


def field_path(*keys: str) -> Getter:
    """A string field at ``keys`` (absent: ``""``)."""
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        return "" if cur is None else str(cur)
    return get


def bool_field_path(*keys: str) -> Getter:
    """A boolean field at ``keys`` as kube renders it: ``"true"``, else ``"false"``."""
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        return "true" if cur is True else "false"
    return get


def int_field_path(*keys: str) -> Getter:
    """An integer field at ``keys`` as kube renders it (absent: ``"0"``)."""
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        return str(cur) if isinstance(cur, int) and not isinstance(cur, bool) else "0"
    return get


def _const(value: str) -> Getter:
    return lambda obj: value


def reject_not_supported(label: str) -> str:
    """The message of kinds that register a field label conversion."""
    return f"field label not supported: {label}"


def reject_default(label: str) -> str:
    """``runtime.DefaultMetaV1FieldSelectorConversion``'s message, for kinds with no conversion of their own."""
    return f'{go_quote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"'


META_GETTERS: Final[Mapping[str, Getter]] = {
    "metadata.name": field_path("metadata", "name"),
    "metadata.namespace": field_path("metadata", "namespace"),
}


@dataclass(frozen=True, slots=True)
class FieldLabels:
    """What one kind accepts in ``fieldSelector`` and how its objects are matched.

    ``accepted`` maps a label a client may send to the canonical label it is
    matched on (``spec.host`` -> ``spec.nodeName``; events.k8s.io's
    ``regarding.name`` -> ``involvedObject.name``). ``getters`` gives the value of
    each canonical label for an object (the kind's ``ToSelectableFields``);
    an accepted label with no getter reads as ``""``, as in kube. ``reject`` words
    the 400 for a label outside ``accepted``.
    """

    accepted: Mapping[str, str]
    getters: Mapping[str, Getter]
    reject: Callable[[str], str]

    @staticmethod
    def of(fields: Mapping[str, Getter], *, namespaced: bool, aliases: Mapping[str, str] | None = None,
           accept_only: Iterable[str] = (), reject: Callable[[str], str] = reject_not_supported) -> FieldLabels:
        """A kind's labels: metadata.name (and metadata.namespace when ``namespaced``), ``fields``,
        ``aliases`` (label -> canonical label) and labels accepted but never set (``accept_only``)."""
        accepted = {"metadata.name": "metadata.name"}
        getters: dict[str, Getter] = {"metadata.name": META_GETTERS["metadata.name"]}
        if namespaced:
            accepted["metadata.namespace"] = "metadata.namespace"
            getters["metadata.namespace"] = META_GETTERS["metadata.namespace"]
        for k in (*fields, *accept_only):
            accepted[k] = k
        accepted.update(aliases or {})
        getters.update(fields)
        return FieldLabels(accepted, getters, reject)


# DefaultMetaV1FieldSelectorConversion: both metadata labels for every kind that registers
# no conversion (every apps/v1 kind among them, so replicasets reject status.replicas);
# cluster-scoped objects simply have no namespace (it reads as "").
DEFAULT_FIELD_LABELS: Final = FieldLabels({"metadata.name": "metadata.name",
                                           "metadata.namespace": "metadata.namespace"},
                                          META_GETTERS, reject_default)


def field_attributes(labels: FieldLabels, obj: dict[str, Any]) -> dict[str, str]:
    """The field set an object is matched on (the kind's ``GetAttrs``), keyed by canonical label.

    ``labels`` is the kind's :class:`FieldLabels`. Values are strings as kube renders them
    (``"true"``, ``"3"``).
    """
    return {label: get(obj) for label, get in labels.getters.items()}


def convert_field_selector(labels: FieldLabels, sel: FieldSelector) -> FieldSelector:
    """Run each requirement through the kind's field label conversion (400 on unsupported labels)."""
    if sel.empty:
        return sel

    def conv(label: str, value: str) -> tuple[str, str]:
        canonical = labels.accepted.get(label)
        if canonical is None:
            raise SelectorError(labels.reject(label))
        return canonical, value

    return sel.transform(conv)


def _labels_of(obj: dict[str, Any]) -> Mapping[str, str]:
    meta = obj.get("metadata")
    if not meta:
        return _EMPTY
    return meta.get("labels") or _EMPTY


_EMPTY: Final[Mapping[str, str]] = {}


class ObjectSelector:
    """Label + field selector for one kind: the ``SelectionPredicate`` list and watch use.

    Build with :func:`compile_selector`; ``matches(obj)`` is the per-object test.
    """

    __slots__ = ("_checks", "_getters", "field", "label")

    def __init__(self, labels: FieldLabels, label: LabelSelector, field_sel: FieldSelector) -> None:
        self.label = label
        self.field = field_sel
        fl = labels
        # Precompute (getter, value, want_equal) per term so matching does no lookups by name.
        self._checks: tuple[tuple[Getter, str, bool], ...] = tuple(
            (fl.getters.get(r.field, _const("")), r.value, r.operator == EQUALS) for r in field_sel.requirements
        )
        self._getters = fl.getters

    @property
    def empty(self) -> bool:
        return self.label.empty and self.field.empty

    def matches(self, obj: dict[str, Any]) -> bool:
        label = self.label
        if not label.empty and not label.matches(_labels_of(obj)):
            return False
        for get, value, want_equal in self._checks:
            if (get(obj) == value) != want_equal:
                return False
        return True

    def __call__(self, obj: dict[str, Any]) -> bool:
        return self.matches(obj)

    def __repr__(self) -> str:
        return f"ObjectSelector(label={str(self.label)!r}, field={str(self.field)!r})"


def compile_selector(labels: FieldLabels, label_selector: str | LabelSelector | None = None,
                     field_selector: str | FieldSelector | None = None) -> ObjectSelector:
    """Parse and validate ``?labelSelector=`` and ``?fieldSelector=`` for a kind whose field
    labels are ``labels`` (its strategy's ``field_labels``).

    Raises :class:`SelectorError` (a 400 ``StatusError``) with kube's message on
    a malformed selector or a field label the kind does not support.
    """
    label = label_selector if isinstance(label_selector, LabelSelector) else parse_label_selector(label_selector)
    fsel = field_selector if isinstance(field_selector, FieldSelector) else parse_field_selector(field_selector)
    return ObjectSelector(labels, label, convert_field_selector(labels, fsel))


# Names the API server was first written against.
compile_selectors = compile_selector
label_selector_to_string = label_selector_string


__all__ = [
    "DEFAULT_FIELD_LABELS",
    "META_GETTERS",
    "FieldLabels",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "ObjectSelector",
    "Requirement",
    "SelectorError",
    "bool_field_path",
    "compile_selector",
    "compile_selectors",
    "convert_field_selector",
    "escape_field_value",
    "field_attributes",
    "field_path",
    "format_label_selector",
    "format_labels",
    "from_label_selector",
    "go_quote",
    "int_field_path",
    "is_qualified_name",
    "is_valid_label_value",
    "label_selector_string",
    "label_selector_to_string",
    "parse_field_selector",
    "parse_label_selector",
    "reject_default",
    "reject_not_supported",
    "selector_from_set",
    "validate_label_name",
    "validate_label_selector",
    "validate_labels",
]
