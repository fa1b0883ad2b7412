"""Built-in objects as Go's ``encoding/json`` writes them: zero values of ``omitempty`` fields left out.

kube-apiserver decodes every built-in object into its Go struct and encodes it back, so
what it stores and returns is what Go's encoder prints for the struct, not what the
client sent. For a field whose JSON tag says ``omitempty`` (or ``omitzero``) and whose
Go type is not a pointer, the zero value is left out: ``""``, ``0``, ``false``, an empty
map, an empty slice. A pointer keeps an explicit zero (``replicas: 0``); a field
without ``omitempty`` keeps its zero. A JSON ``null`` decodes to the Go zero value:

* an ``omitempty``/``omitzero`` field: left out;
* a pointer, slice or map without ``omitempty``: a nil one, which Go writes as
  ``null`` (kept);
* a non-pointer scalar without ``omitempty``: its zero (``""``, ``0``, ``false``);
* a non-pointer struct: the zero struct, written ``{}`` (Go would also print the
  struct's non-``omitempty`` members; this module only drops, it never invents them);
* apimachinery's own types (Time, Quantity, IntOrString, RawExtension, ...): kept as
  they are, their encoders being their own.

The Go shape of every field is the table in :mod:`k8py.api.protobuf_tags`, parsed by
:func:`k8py.api.protobuf.schema`. Custom resources are unstructured in kube and are not
normalized; nor are the insides of raw JSON fields (``RawExtension``, ``FieldsV1``,
apiextensions' ``JSON`` values), which this walk never enters. Keys the table does not
know (unknown fields, versions the table lacks) are left alone.

Nothing here does I/O. :func:`normalize` changes the object in place.
"""

from __future__ import annotations

import functools
from typing import Any

from k8py.api.protobuf import SPECIAL_TYPES, Field, message_name, schema

Obj = dict[str, Any]

# What a walk does with one property (decided once per message field, see _rule).
_KEEP = 0  # an apimachinery special type: its own encoder, never entered
_SCALAR = 1  # s/i/b/y: a zero is dropped when omitempty and not a pointer
_MESSAGE = 2  # a struct (pointer or not): walked
_LIST = 3  # a slice of scalars or specials: [] dropped when omitempty
_LIST_OF_MESSAGES = 4  # a slice of structs: each item walked, [] dropped when omitempty
_MAP = 5  # a map of scalars, lists or specials: {} dropped when omitempty
_MAP_OF_MESSAGES = 6  # a map of structs: each value walked, {} dropped when omitempty

# What a JSON null becomes: the Go zero value as the encoder prints it.
_NULL_KEEP = 0  # a nil pointer/slice/map without omitempty (null), or a special type's own zero
_NULL_DROP = 1  # omitempty (or omitzero) of a pointer, slice, map or scalar: left out
_NULL_ZERO = 2  # a non-pointer scalar without omitempty: "", 0, false
_NULL_STRUCT = 3  # a non-pointer struct: {}

_ZERO: dict[str, Any] = {"s": "", "y": "", "i": 0, "b": False}

Rule = tuple[int, bool, int, str]


def _rule(f: Field) -> Rule:
    """(what to do, drop a zero or empty value, what null becomes, the field's type) for one field."""
    special = f.type in SPECIAL_TYPES
    scalar = f.type in _ZERO
    if f.repeated:
        what = _LIST if scalar or special else _LIST_OF_MESSAGES
    elif f.map:
        what = _MAP if scalar or special or f.map_of_lists else _MAP_OF_MESSAGES
    elif scalar:
        what = _SCALAR
    elif special:
        what = _KEEP
    else:
        what = _MESSAGE
    omit = f.omitempty or f.omitzero
    # Go's omitempty leaves out a nil pointer, an empty slice or map and a zero scalar; a
    # non-pointer struct is never "empty" to it. omitzero drops a zero struct too: the one
    # such field in the table is metav1.Time's creationTimestamp, whose zero prints null.
    drop_empty = omit and not f.pointer and what not in (_MESSAGE, _KEEP)
    if f.pointer:
        null = _NULL_DROP if omit else _NULL_KEEP
    elif what == _MESSAGE:
        null = _NULL_STRUCT
    elif what == _KEEP:
        null = _NULL_DROP if f.omitzero else _NULL_KEEP
    elif omit:
        null = _NULL_DROP
    else:
        null = _NULL_ZERO if what == _SCALAR else _NULL_KEEP
    return what, drop_empty, null, f.type


@functools.cache
def _rules(message: str) -> dict[str, Rule]:
    """JSON property -> rule for one message, inline members flattened into it."""
    out: dict[str, Rule] = {}
    for f in schema()[message].values():
        if f.inline:
            out.update(_rules(f.type))
        else:
            out[f.json] = _rule(f)
    return out


def _is_zero(value: Any, t: str) -> bool:
    # only a value of the field's own JSON type counts (a wrong type is validation's to refuse)
    if t == "b":
        return value is False
    if t == "i":
        return value == 0 and type(value) is int
    return value == ""


def _walk(obj: Obj, message: str) -> None:
    rules = _rules(message)
    drop: list[str] | None = None
    for key, value in obj.items():
        rule = rules.get(key)
        if rule is None:
            continue  # not a field of the Go type: unknown fields are fieldcheck's
        what, drop_empty, null, t = rule
        if value is None:
            if null == _NULL_DROP:
                (drop := drop or []).append(key)
            elif null == _NULL_ZERO:
                obj[key] = _ZERO[t]
            elif null == _NULL_STRUCT:
                obj[key] = {}
        elif what == _SCALAR:
            if drop_empty and _is_zero(value, t):
                (drop := drop or []).append(key)
        elif what == _MESSAGE:
            if type(value) is dict:
                _walk(value, t)
        elif what == _LIST_OF_MESSAGES or what == _MAP_OF_MESSAGES:
            if not value:
                if drop_empty and type(value) in (list, dict):
                    (drop := drop or []).append(key)
            elif what == _LIST_OF_MESSAGES and type(value) is list:
                for item in value:
                    if type(item) is dict:
                        _walk(item, t)
            elif what == _MAP_OF_MESSAGES and type(value) is dict:
                for item in value.values():
                    if type(item) is dict:
                        _walk(item, t)
        elif what != _KEEP and drop_empty and not value and type(value) in (list, dict):  # _LIST, _MAP
            (drop := drop or []).append(key)
    if drop:
        for key in drop:
            del obj[key]


@functools.cache
def _message_of(api_version: str, kind: str) -> str | None:
    return message_name(api_version, kind)


def normalize(obj: Obj, message: str | None = None) -> Obj:
    """Drop from ``obj`` (a built-in object, in place) what Go's JSON encoder would leave out.

    ``message`` is the object's Go type in :mod:`k8py.api.protobuf_tags` (``apps/v1.Deployment``);
    by default the one its ``apiVersion`` and ``kind`` name. An object of a kind the table
    does not know is returned untouched. Returns ``obj``.
    """
    if message is None:
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(av, str) or not isinstance(kind, str):
            return obj
        message = _message_of(av, kind)
        if message is None:
            return obj
    _walk(obj, message)
    return obj
