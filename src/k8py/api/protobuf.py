"""Kubernetes protobuf request bodies, decoded into the dicts a JSON body gives.

client-go's typed clients (kubectl ``create deployment|configmap|secret|...``,
``create token``, ``auth can-i``, ``autoscale``, ``debug node``) send
``application/vnd.kubernetes.protobuf`` bodies. On the wire (Kubernetes
"api-concepts", protobuf encoding):

* 4 bytes of magic, ``k8s\\x00``;
* a ``runtime.Unknown`` message: ``typeMeta`` (1) {``apiVersion`` (1),
  ``kind`` (2)}, ``raw`` (2) the object's own message, ``contentEncoding`` (3),
  ``contentType`` (4);
* the object message as generated from the Go types (proto2), whose field
  numbers live in :mod:`k8py.api.protobuf_tags`.

The result is what Go's ``encoding/json`` would print for the object the
client built, so the rest of the server cannot tell the two encodings apart.
That decides the zero values: gogo-protobuf writes every non-pointer scalar,
set or not, so a ``0``/``""``/``false`` of a non-pointer field whose JSON tag
says ``omitempty`` is dropped (Go treats it as unset), while pointer fields
(``replicas``, ``backoffLimit``, ``suspend``, ``minAvailable`` ...) keep an
explicit zero, and non-pointer fields without ``omitempty`` keep theirs, as in
JSON. A zero ``metav1.Time`` (an empty message) is left out, as JSON's
``null`` would be. Unknown field numbers are skipped.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from k8py.api import errors, fieldcheck
from k8py.api.gotext import go_duration_ns
from k8py.api.protobuf_tags import MESSAGES
from k8py.api.protowire import LEN, VARINT, WireError, fields, read_varint

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

Obj = dict[str, Any]

# apimachinery types with their own encoding (see protobuf_tags' docstring).
SPECIAL_TYPES = frozenset({"Quantity", "Time", "MicroTime", "Duration", "FieldsV1", "IntOrString", "RawExtension"})
_SCALARS = frozenset({"s", "i", "b", "y"})
_MISSING = object()


class ProtobufError(WireError):
    """The bytes are not a well-formed message of the expected type."""


def is_protobuf(content_type: str | None) -> bool:
    """True for ``application/vnd.kubernetes.protobuf`` with or without parameters."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


# --- the table, parsed --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    json: str  # "" for inline fields
    type: str  # "s" | "i" | "b" | "y" | a special type | a fully qualified message name
    repeated: bool = False
    map: bool = False
    map_of_lists: bool = False  # {[]s}: values are wrapper messages {repeated string items = 1}
    pointer: bool = False
    omitempty: bool = False
    omitzero: bool = False
    inline: bool = False

    @property
    def drops_zero(self) -> bool:
        """A zero decoded for this field means "unset" and is left out of the JSON."""
        return not self.pointer and (self.omitempty or self.omitzero)


Message = dict[int, Field]


def _parse_field(package: str, token: str) -> Field:
    parts = token.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"bad field token {token!r}")
    num, name, code = parts[0], parts[1], parts[2]
    flags = parts[3] if len(parts) == 4 else ""
    repeated = is_map = map_of_lists = False
    if code.startswith("[]"):
        repeated, code = True, code[2:]
    elif code.startswith("{") and code.endswith("}"):
        is_map, code = True, code[1:-1]
        if code == "[]s":
            map_of_lists, code = True, "s"
    if code not in _SCALARS and code not in SPECIAL_TYPES and "." not in code:
        code = f"{package}.{code}"
    return Field(int(num), name, code, repeated=repeated, map=is_map, map_of_lists=map_of_lists,
                 pointer="*" in flags, omitempty="e" in flags, omitzero="z" in flags, inline="-" in flags)


@functools.cache
def schema() -> dict[str, Message]:
    """Message name (``apps/v1.DeploymentSpec``) -> field number -> :class:`Field`."""
    out: dict[str, Message] = {}
    for name, spec in MESSAGES.items():
        package = name.rsplit(".", 1)[0]
        fields = (_parse_field(package, tok) for tok in spec.split())
        out[name] = {f.number: f for f in fields}
    return out


def message_name(api_version: str, kind: str) -> str | None:
    """The table entry for a kind (``apps/v1``, ``Deployment`` -> ``apps/v1.Deployment``), if any."""
    group, _, version = api_version.rpartition("/")
    # Go packages are named after the group's first label: rbac.authorization.k8s.io -> rbac.
    package = (group.split(".", 1)[0] if group else "core") + "/" + version
    msgs = schema()
    for name in (f"{package}.{kind}", f"meta/v1.{kind}"):  # meta/v1 types are served in every version
        if name in msgs:
            return name
    return None


# --- wire reading (k8py.api.protowire) --------------------------------------------------------------


def _signed(v: int) -> int:
    # int32 and int64 are both sign-extended to 64 bits on the wire
    return v - (1 << 64) if v >= 1 << 63 else v


def _expect(f: Field, wt: int, want: int) -> None:
    if wt != want:
        raise ProtobufError(f"field {f.number} ({f.json or 'inline'}): wire type {wt}, expected {want}")


def _text(b: bytes) -> str:
    # Go strings may hold invalid UTF-8; encoding/json writes U+FFFD for it
    return b.decode("utf-8", errors="replace")


# --- values ----------------------------------------------------------------------------------------


def _rfc3339(seconds: int, micros: int | None) -> str:
    try:
        t = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise ProtobufError(f"timestamp {seconds} out of range") from e
    # Go's time.RFC3339 / metav1.RFC3339Micro in UTC; formatted by hand so years below 1000 keep 4 digits
    out = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return out + ("Z" if micros is None else f".{micros:06d}Z")


def _timestamp(b: bytes, micro: bool) -> str | None:
    """metav1.Time / MicroTime: {seconds 1, nanos 2}; an empty message is Go's zero time (JSON null)."""
    if not b:
        return None
    seconds = nanos = 0
    for num, _wt, v in fields(b):
        if num == 1 and isinstance(v, int):
            seconds = _signed(v)
        elif num == 2 and isinstance(v, int):
            nanos = _signed(v)
    # metav1.Time keeps whole seconds only (its JSON has no fraction); MicroTime keeps microseconds
    return _rfc3339(seconds, nanos // 1000 if micro else None)


def _raw_json(b: bytes, what: str) -> Any:
    if b.startswith(MAGIC):
        return decode(b)
    try:
        return orjson.loads(b)
    except orjson.JSONDecodeError as e:
        raise ProtobufError(f"{what} does not hold JSON: {e}") from e


def _special(t: str, b: bytes) -> Any:
    """Decode one of apimachinery's specially-encoded messages from its bytes."""
    if t == "Quantity":  # {string 1}, already in canonical form
        s = ""
        for num, _wt, v in fields(b):
            if num == 1 and isinstance(v, bytes):
                s = _text(v)
        return s or "0"
    if t == "Time":
        return _timestamp(b, micro=False)
    if t == "MicroTime":
        return _timestamp(b, micro=True)
    if t == "IntOrString":  # {type 1: 0 int, 1 string; intVal 2; strVal 3}
        kind, ival, sval = 0, 0, ""
        for num, _wt, v in fields(b):
            if num == 1 and isinstance(v, int):
                kind = v
            elif num == 2 and isinstance(v, int):
                ival = _signed(v)
            elif num == 3 and isinstance(v, bytes):
                sval = _text(v)
        return sval if kind == 1 else ival
    if t == "Duration":  # {duration 1: int64 nanoseconds}
        ns = 0
        for num, _wt, v in fields(b):
            if num == 1 and isinstance(v, int):
                ns = _signed(v)
        return go_duration_ns(ns)
    # RawExtension and FieldsV1: {raw 1: bytes of JSON}
    raw = b""
    for num, _wt, v in fields(b):
        if num == 1 and isinstance(v, bytes):
            raw = v
    if not raw:
        return None
    return _raw_json(raw, t)


def _value(f: Field, t: str, wt: int, v: Any) -> Any:
    """One (non-repeated) value of type ``t`` for field ``f``."""
    if t == "s":
        _expect(f, wt, LEN)
        return _text(v)
    if t == "i":
        _expect(f, wt, VARINT)
        return _signed(v)
    if t == "b":
        _expect(f, wt, VARINT)
        return v != 0
    _expect(f, wt, LEN)
    if t == "y":
        return base64.b64encode(v).decode("ascii")
    if t in SPECIAL_TYPES:
        return _special(t, v)
    return _message(t, v)


def _zero(t: str) -> Any:
    """Go's zero value of a map value type, as JSON shows it."""
    return {"s": "", "i": 0, "b": False, "y": "", "Quantity": "0", "IntOrString": 0,
            "Duration": "0s"}.get(t, None if t in SPECIAL_TYPES else {})


def _map_entry(f: Field, b: bytes) -> tuple[str, Any]:
    key = ""
    val: Any = _MISSING
    for num, wt, v in fields(b):
        if num == 1:
            _expect(f, wt, LEN)
            key = _text(v)
        elif num == 2:
            if f.map_of_lists:
                _expect(f, wt, LEN)
                val = [_text(x) for n, w, x in fields(v) if n == 1 and w == LEN]
            else:
                val = _value(f, f.type, wt, v)
    if val is _MISSING:
        val = [] if f.map_of_lists else _zero(f.type)
    return key, val



def _is_zero(v: Any) -> bool:
    return v == "" or v is False or (type(v) is int and v == 0)


def _message(name: str, buf: bytes) -> Obj:
    msg = schema().get(name)
    if msg is None:  # only a broken table gets here
        raise ProtobufError(f"no field table for message {name}")
    out: Obj = {}
    for num, wt, v in fields(buf):
        f = msg.get(num)
        if f is None:
            continue  # a field this server does not know: skip, as Go's unmarshal does
        if f.inline:
            _expect(f, wt, LEN)
            out.update(_message(f.type, v))
        elif f.map:
            _expect(f, wt, LEN)
            k, val = _map_entry(f, v)
            out.setdefault(f.json, {})[k] = val
        elif f.repeated:
            items = out.setdefault(f.json, [])
            if wt == LEN and f.type in ("i", "b"):  # packed
                pos, end = 0, len(v)
                while pos < end:
                    x, pos = read_varint(v, pos, end)
                    items.append(_signed(x) if f.type == "i" else x != 0)
            else:
                items.append(_value(f, f.type, wt, v))
        else:
            val = _value(f, f.type, wt, v)
            # Go JSON: a zero Time/MicroTime/RawExtension is null; a zero scalar of a non-pointer
            # omitempty field is left out; pointers and non-omitempty fields keep their zero.
            if val is None or (f.drops_zero and f.type in _SCALARS and _is_zero(val)):
                out.pop(f.json, None)
            else:
                out[f.json] = val
    return out


# --- entry point -----------------------------------------------------------------------------------


def _envelope(raw: bytes) -> tuple[str, str, bytes]:
    api_version = kind = content_encoding = ""
    body = b""
    for num, wt, v in fields(raw):
        if wt != LEN:
            continue
        if num == 1:
            for n, w, x in fields(v):
                if w == LEN and n == 1:
                    api_version = _text(x)
                elif w == LEN and n == 2:
                    kind = _text(x)
        elif num == 2:
            body = v
        elif num == 3:
            content_encoding = _text(v)
    if content_encoding:
        raise ProtobufError(f"contentEncoding {content_encoding!r} is not supported")
    return api_version, kind, body


def decode(raw: bytes) -> Obj:
    """Decode a Kubernetes protobuf body (magic + runtime.Unknown) into the object's JSON dict.

    Raises ``StatusError`` 400 BadRequest when the body is malformed or its kind is unknown here.
    """
    data = bytes(raw)
    if not data.startswith(MAGIC):
        raise errors.bad_request(
            "the protobuf body does not start with the Kubernetes magic bytes 'k8s\\x00'; "
            "send it as application/json instead")
    try:
        api_version, kind, body = _envelope(data[len(MAGIC):])
        if not api_version or not kind:
            raise errors.bad_request(
                "the protobuf body has no apiVersion or kind in its typeMeta (runtime.Unknown field 1)")
        name = message_name(api_version, kind)
        if name is None:
            raise errors.bad_request(
                f"this server cannot decode kind {kind!r} of {api_version!r} from protobuf; "
                "send it as application/json instead")
        obj: Obj = {"apiVersion": api_version, "kind": kind}
        obj.update(_message(name, body))
        # the same depth limit as JSON and YAML bodies: what is walked later must not recurse too far
        fieldcheck.check_depth(obj)
    except WireError as e:
        raise errors.bad_request(f"the protobuf body is malformed: {e}") from e
    except RecursionError as e:
        raise errors.bad_request("the protobuf body is nested too deeply") from e
    return obj
