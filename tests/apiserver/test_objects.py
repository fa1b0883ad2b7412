"""The stored layout and the list fast path give the same objects as decoding."""

from __future__ import annotations

import orjson
import pytest

from k8py.api.registry import Registry
from k8py.apiserver.objects import decode, encode, splice_rv
from k8py.storage.interface import KeyValue

REG = Registry()
CM = REG.by_kind("", "v1", "ConfigMap")


@pytest.mark.parametrize("obj", [
    {"data": {"a": "b"}, "kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x", "namespace": "d",
                                                                              "resourceVersion": "5"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}},
    {"metadata": {"name": "y", "labels": {"metadata": "{"}}, "apiVersion": "v1", "kind": "ConfigMap",
     "data": {"\"metadata\":{": "tricky"}},
])
def test_splice_equals_decode(obj: dict) -> None:
    assert CM is not None
    raw = encode(obj, CM)
    assert raw.startswith(b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{')
    assert b"resourceVersion" not in raw
    kv = KeyValue("/k", raw, 3, 42)
    spliced = splice_rv(kv)
    assert spliced is not None
    assert orjson.loads(spliced) == decode(kv, CM)
    assert orjson.loads(spliced)["metadata"]["resourceVersion"] == "42"


def test_foreign_layout_falls_back() -> None:
    kv = KeyValue("/k", b'{"metadata":{"name":"x"},"apiVersion":"v1","kind":"ConfigMap"}', 1, 1)
    assert splice_rv(kv) is None
