"""Base64 ([]byte) fields through real kubectl: padded values (``eA==``) must round-trip, as Go's
encoding/base64 accepts them, and later updates of such objects must keep working."""

from __future__ import annotations

import base64

from .conftest import Server, manifest


def test_apply_secret_with_double_padding_then_label(server: Server, ns: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
              "data": {"a": "eA==", "b": "eHk=", "c": "eHl6"}}
    server.kubectl("apply", "-f", "-", input=manifest(secret))
    server.kubectl("label", "secret", "s", "-n", ns, "k=v")
    got = server.kjson("get", "secret", "s", "-n", ns)
    assert got["data"] == {"a": "eA==", "b": "eHk=", "c": "eHl6"}
    assert got["metadata"]["labels"] == {"k": "v"}
    assert base64.b64decode(got["data"]["a"]) == b"x"


def test_created_secret_stays_updatable(server: Server, ns: str) -> None:
    server.kubectl("create", "secret", "generic", "lit", "-n", ns, "--from-literal=a=x")
    server.kubectl("label", "secret", "lit", "-n", ns, "k=v")
    server.kubectl("annotate", "secret", "lit", "-n", ns, "note=yes")
    got = server.kjson("get", "secret", "lit", "-n", ns)
    assert got["data"] == {"a": "eA=="} and got["metadata"]["annotations"]["note"] == "yes"


def test_configmap_binary_data_and_bad_padding(server: Server, ns: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bin", "namespace": ns},
          "binaryData": {"one": "eA=="}}
    server.kubectl("apply", "-f", "-", input=manifest(cm))
    server.kubectl("label", "configmap", "bin", "-n", ns, "k=v")
    assert server.kjson("get", "configmap", "bin", "-n", ns)["binaryData"] == {"one": "eA=="}
    bad = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad", "namespace": ns},
           "data": {"a": "eA=x"}}
    p = server.kubectl("apply", "-f", "-", input=manifest(bad), check=False)
    assert p.returncode != 0
    assert "illegal base64 data at input byte 2" in p.stderr
