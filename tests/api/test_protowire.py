"""The protobuf wire format shared by k8py's hand-written encoders and decoders, checked against
Google's protobuf library: varints (negative int64 as ten bytes), keys, length-delimited fields,
every wire type read back, and malformed bytes refused with what is wrong."""

from __future__ import annotations

import struct

import pytest
from google.protobuf import wrappers_pb2

from k8py.api.protowire import (
    I32,
    I64,
    LEN,
    VARINT,
    WireError,
    encode_varint,
    fields,
    key,
    length_delimited,
    read_varint,
)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**31 - 1, 2**63 - 1, -1, -2**63])
def test_varints_are_protobufs_own(n: int) -> None:
    theirs = wrappers_pb2.Int64Value(value=n).SerializeToString()
    ours = key(1, VARINT) + encode_varint(n) if n else b""  # proto3 leaves a zero out
    assert ours == theirs
    if n:
        v, end = read_varint(theirs, 1)
        assert end == len(theirs) and v == n % 2**64  # two's complement, as Go's uint64
    assert len(encode_varint(-1)) == 10


def test_every_wire_type_reads_back() -> None:
    msg = (wrappers_pb2.StringValue(value="héllo").SerializeToString()
           + wrappers_pb2.DoubleValue(value=2.5).SerializeToString().replace(b"\x09", key(2, I64), 1)
           + wrappers_pb2.FloatValue(value=1.5).SerializeToString().replace(b"\x0d", key(3, I32), 1)
           + wrappers_pb2.UInt64Value(value=300).SerializeToString().replace(b"\x08", key(4, VARINT), 1))
    got = fields(msg)
    assert [(n, wt) for n, wt, _ in got] == [(1, LEN), (2, I64), (3, I32), (4, VARINT)]
    assert got[0][2] == "héllo".encode()
    assert struct.unpack("<d", got[1][2].to_bytes(8, "little"))[0] == 2.5
    assert struct.unpack("<f", got[2][2].to_bytes(4, "little"))[0] == 1.5
    assert got[3][2] == 300
    assert length_delimited(1, "héllo".encode()) == wrappers_pb2.StringValue(value="héllo").SerializeToString()


@pytest.mark.parametrize(("raw", "message"), [
    (b"\x0a", "truncated varint"),
    (b"\x08" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes"),
    (b"\x00\x01", "field number 0"),
    (b"\x0a\x05ab", "field 1: length 5 runs past the end of the message"),
    (b"\x09\x00\x00", "field 1: truncated fixed64"),
    (b"\x0d\x00", "field 1: truncated fixed32"),
    (b"\x0b", "field 1: unsupported wire type 3"),
])
def test_malformed_bytes_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(WireError, match=f"^{message}$"):
        fields(raw)
