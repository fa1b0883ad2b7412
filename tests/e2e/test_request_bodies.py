"""Request bodies of real sizes over TLS, read whole: kubectl (JSON, YAML and protobuf), the
official Python client, and raw HTTP with Content-Length and chunked transfer."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.conftest import Server


def big_cm(name: str, keys: int, size: int = 200) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {f"key-{i:05d}": chr(ord("a") + i % 26) * size for i in range(keys)}}


def stored_keys(server: Server, ns: str, name: str) -> dict[str, str]:
    return dict(server.kjson("get", "configmap", name, "-n", ns)["data"])


# about 16 KB and 209 KB (client-side apply keeps a copy in an annotation of at most 256 KiB)
@pytest.mark.parametrize("keys", [80, 1000])
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_kubectl_apply_of_big_configmaps_stores_every_key(server: Server, ns: str, keys: int, fmt: str,
                                                          tmp_path: Path) -> None:
    obj = big_cm(f"big-{fmt}-{keys}", keys)
    f = tmp_path / f"cm.{fmt}"
    f.write_text(yaml.safe_dump(obj) if fmt == "yaml" else json.dumps(obj))
    server.kubectl("apply", "-n", ns, "-f", str(f))
    assert stored_keys(server, ns, obj["metadata"]["name"]) == obj["data"]
    # and a later apply of the same big object (a patch body of the same size) is read whole too
    obj["data"]["key-00000"] = "changed"
    f.write_text(yaml.safe_dump(obj) if fmt == "yaml" else json.dumps(obj))
    server.kubectl("apply", "-n", ns, "-f", str(f))
    assert stored_keys(server, ns, obj["metadata"]["name"]) == obj["data"]


@pytest.mark.parametrize("how", ["create", "server-side"])
def test_kubectl_create_replace_and_server_side_apply_of_940k(server: Server, ns: str, how: str,
                                                               tmp_path: Path) -> None:
    obj = big_cm(f"huge-{how}", 4500)
    f = tmp_path / "cm.yaml"
    f.write_text(yaml.safe_dump(obj))
    first = ["create"] if how == "create" else ["apply", "--server-side"]
    server.kubectl(*first, "-n", ns, "-f", str(f))
    assert stored_keys(server, ns, obj["metadata"]["name"]) == obj["data"]
    obj["data"]["key-04499"] = "changed"
    f.write_text(yaml.safe_dump(obj))
    server.kubectl(*(["replace"] if how == "create" else ["apply", "--server-side"]), "-n", ns, "-f", str(f))
    assert stored_keys(server, ns, obj["metadata"]["name"]) == obj["data"]


def test_kubectl_create_from_files_sends_a_big_protobuf_body(server: Server, ns: str, tmp_path: Path) -> None:
    d = tmp_path / "files"
    d.mkdir()
    want = {}
    for i in range(1000):
        want[f"f{i:04d}"] = chr(ord("a") + i % 26) * 200
        (d / f"f{i:04d}").write_text(want[f"f{i:04d}"])
    server.kubectl("create", "configmap", "from-files", "-n", ns, f"--from-file={d}")
    assert stored_keys(server, ns, "from-files") == want


def test_python_client_creates_and_replaces_a_big_configmap(server: Server, ns: str) -> None:
    from kubernetes import client

    with server.client() as api_client:
        v1 = client.CoreV1Api(api_client)
        obj = big_cm("py-big", 1000)
        v1.create_namespaced_config_map(ns, obj)
        got = v1.read_namespaced_config_map("py-big", ns)
        assert got.data == obj["data"]
        got.data["key-00001"] = "x" * 300
        v1.replace_namespaced_config_map("py-big", ns, got)
        assert v1.read_namespaced_config_map("py-big", ns).data["key-00001"] == "x" * 300


# -- raw HTTP over TLS ---------------------------------------------------------------------------

@pytest.fixture
def conn(server: Server) -> Iterator[http.client.HTTPSConnection]:
    tls = server.data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    c = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=60)
    yield c
    c.close()


def send(conn: http.client.HTTPSConnection, path: str, body: bytes, content_type: str, chunked: bool,
         piece: int = 4096) -> tuple[int, Any]:
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if chunked:
        def pieces() -> Iterator[bytes]:
            for i in range(0, len(body), piece):
                yield body[i:i + piece]
        conn.request("POST", path, body=pieces(), headers=headers, encode_chunked=True)
    else:
        conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    return r.status, json.loads(data)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_raw_bodies_from_16k_to_3mb(server: Server, ns: str, conn: http.client.HTTPSConnection, chunked: bool,
                                    fmt: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    # ConfigMaps hold at most 1 MiB of data; padding (whitespace JSON allows, a YAML comment)
    # makes the body itself as big as kube accepts: every byte of it must be read.
    for i, (keys, pad) in enumerate([(80, 0), (1000, 0), (4500, 0), (1000, 2_800_000)]):
        obj = big_cm(f"raw-{fmt}-{int(chunked)}-{i}", keys)
        if fmt == "json":
            body = json.dumps(obj).encode() + b" " * pad
            ct = "application/json"
        else:
            body = yaml.safe_dump(obj).encode() + (b"# " + b"p" * pad + b"\n" if pad else b"")
            ct = "application/yaml"
        assert len(body) <= 3 * 1024 * 1024
        code, got = send(conn, path, body, ct, chunked)
        assert code == 201, got
        assert got["data"] == obj["data"]
    # one byte over the limit: 413, nothing stored, either way the body comes
    obj = big_cm(f"raw-{fmt}-{int(chunked)}-over", 10)
    body = json.dumps(obj).encode()
    body += b" " * (3 * 1024 * 1024 + 1 - len(body))
    code, st = send(conn, path, body, "application/json", chunked, piece=65536)
    assert code == 413 and st["reason"] == "RequestEntityTooLarge"
    assert server.kubectl("get", "configmap", obj["metadata"]["name"], "-n", ns, check=False).returncode != 0


def test_a_yaml_body_sent_in_small_pieces_is_never_cut_at_a_line(server: Server, ns: str,
                                                                 conn: http.client.HTTPSConnection) -> None:
    obj = big_cm("pieces", 2000, 100)
    body = yaml.safe_dump(obj).encode()
    code, got = send(conn, f"/api/v1/namespaces/{ns}/configmaps", body, "application/yaml", True, piece=997)
    assert code == 201
    assert len(got["data"]) == 2000
