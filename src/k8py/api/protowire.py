"""The protobuf wire format, for the parts of k8py that read or write protobuf by hand: request
bodies (:mod:`k8py.api.protobuf`), the OpenAPI v2 document (:mod:`k8py.api.openapi_v2`), gRPC
health probes (:mod:`k8py.kubelet.grpcprobe`) and etcd snapshots (:mod:`k8py.storage.snapshot`).

A message is a sequence of fields, each a key (``field number << 3 | wire type``, a varint) and a
value: a varint (wire type 0), 8 little-endian bytes (1), a varint length and that many bytes
(2), or 4 little-endian bytes (5). Varints are base-128, least significant group first, the high
bit set on every byte but the last; negative int32/int64 values are written as their 64-bit two's
complement (ten bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["I32", "I64", "LEN", "VARINT", "WireError", "encode_varint", "fields", "iter_fields", "key",
           "length_delimited", "read_varint"]

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def encode_varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative value takes ten bytes, its 64-bit two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def key(field: int, wire_type: int) -> bytes:
    return encode_varint((field << 3) | wire_type)


def length_delimited(field: int, data: bytes) -> bytes:
    return key(field, LEN) + encode_varint(len(data)) + data


def read_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """The varint at ``buf[pos:end]`` and the position after it."""
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise WireError("varint longer than 10 bytes")


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """``(number, wire type, value)`` of each field of a message, in order: an int for a varint or
    a fixed-size value, the bytes for a length-delimited one."""
    return list(iter_fields(buf))


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """:func:`fields` one at a time, for a reader that stops at the field it wants (the bytes
    after it are not read, nor checked)."""
    pos, end = 0, len(buf)
    while pos < end:
        k, pos = read_varint(buf, pos, end)
        num, wt = k >> 3, k & 7
        val: int | bytes
        if num == 0:
            raise WireError("field number 0")
        if wt == VARINT:
            val, pos = read_varint(buf, pos, end)
        elif wt == LEN:
            n, pos = read_varint(buf, pos, end)
            if pos + n > end:
                raise WireError(f"field {num}: length {n} runs past the end of the message")
            val, pos = buf[pos:pos + n], pos + n
        elif wt == I64:
            if pos + 8 > end:
                raise WireError(f"field {num}: truncated fixed64")
            val, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wt == I32:
            if pos + 4 > end:
                raise WireError(f"field {num}: truncated fixed32")
            val, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise WireError(f"field {num}: unsupported wire type {wt}")
        yield num, wt, val
