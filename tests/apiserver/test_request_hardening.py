"""Bad and unusual requests, in-process: DeleteOptions in every encoding, concurrent deletes,
routes that do not exist, query parameters Go could not decode, replies that must not be lost
after a commit, and the wire details clients compare (Status field order, trailing newline)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from k8py.apiserver.rest import MAX_WARNING_HEADERS, warning_headers

CM = "/api/v1/namespaces/default/configmaps"
SVC = "/api/v1/namespaces/default/services"
DEPS = "/apis/apps/v1/namespaces/default/deployments"
PB = "application/vnd.kubernetes.protobuf"




def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def make_cm(api: TestClient, name: str) -> dict[str, Any]:
    r = await api.post(CM, json=cm(name, k="v"))
    assert r.status == 201, await r.text()
    return dict(await r.json())


# -- protobuf wire bytes, written by hand (field numbers of meta/v1 DeleteOptions) -------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _int(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v)


def pb_envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _len(1, api_version.encode()) + _len(2, kind.encode())
    return b"k8s\x00" + _len(1, type_meta) + _len(2, raw) + _len(4, b"application/vnd.kubernetes.protobuf")


# -- DeleteOptions ---------------------------------------------------------------------------------

async def test_protobuf_delete_options_are_decoded_by_content_type(api: TestClient) -> None:
    """client-go's typed clients (Helm's release storage) send DeleteOptions as protobuf."""
    await make_cm(api, "pb")
    body = pb_envelope("v1", "DeleteOptions", _int(1, 0) + _len(4, b"Background"))
    r = await api.delete(f"{CM}/pb", data=body, headers={"Content-Type": PB})
    assert r.status == 200, await r.text()
    assert (await api.get(f"{CM}/pb")).status == 404
    # a precondition carried in protobuf is honoured
    obj = await make_cm(api, "pb2")
    pre = _len(2, _len(1, b"not-the-uid"))
    r = await api.delete(f"{CM}/pb2", data=pb_envelope("v1", "DeleteOptions", pre), headers={"Content-Type": PB})
    assert r.status == 409
    r = await api.delete(f"{CM}/pb2", data=pb_envelope("v1", "DeleteOptions", _len(2, _len(
        1, obj["metadata"]["uid"].encode()))), headers={"Content-Type": PB})
    assert r.status == 200


async def test_yaml_delete_options(api: TestClient) -> None:
    await make_cm(api, "y")
    r = await api.delete(f"{CM}/y", data=b"kind: DeleteOptions\napiVersion: v1\ngracePeriodSeconds: 0\n",
                         headers={"Content-Type": "application/yaml"})
    assert r.status == 200, await r.text()


@pytest.mark.parametrize(("body", "message"), [
    ({"gracePeriodSeconds": True},
     "json: cannot unmarshal bool into Go struct field DeleteOptions.gracePeriodSeconds of type int64"),
    ({"gracePeriodSeconds": "5"},
     "json: cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds of type int64"),
    ({"dryRun": 5}, "json: cannot unmarshal number into Go struct field DeleteOptions.dryRun of type []string"),
    ({"dryRun": True}, "json: cannot unmarshal bool into Go struct field DeleteOptions.dryRun of type []string"),
    ({"dryRun": "All"}, "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string"),
    ({"preconditions": 5},
     "json: cannot unmarshal number into Go struct field DeleteOptions.preconditions of type v1.Preconditions"),
    ({"preconditions": {"uid": 5}},
     "json: cannot unmarshal number into Go struct field DeleteOptions.preconditions.uid of type types.UID"),
    ({"orphanDependents": "yes"},
     "json: cannot unmarshal string into Go struct field DeleteOptions.orphanDependents of type bool"),
])
async def test_delete_options_of_the_wrong_type_are_400_and_delete_nothing(api: TestClient, body: Any,
                                                                             message: str) -> None:
    await make_cm(api, "keep")
    r = await api.delete(f"{CM}/keep", json=body)
    assert r.status == 400, await r.text()
    st = await r.json()
    assert st["reason"] == "BadRequest" and st["message"] == message
    assert (await api.get(f"{CM}/keep")).status == 200


async def test_delete_options_values_kube_refuses(api: TestClient) -> None:
    await make_cm(api, "keep")
    r = await api.delete(f"{CM}/keep", json={"dryRun": ["Bogus"]})
    assert r.status == 422
    st = await r.json()
    assert st["message"] == ('DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
                             '[]string{"Bogus"}: supported values: "All"')
    r = await api.delete(f"{CM}/keep", params={"propagationPolicy": "Bogus"})
    assert r.status == 422
    assert (await r.json())["details"]["causes"][0]["field"] == "propagationPolicy"
    for q in ({"gracePeriodSeconds": "abc"}, {"orphanDependents": "maybe"}):
        r = await api.delete(f"{CM}/keep", params=q)
        assert r.status == 400, q
    r = await api.delete(CM, params={"dryRun": "Bogus"})
    assert r.status == 422
    r = await api.delete(CM, params={"propagationPolicy": "Bogus"})
    assert r.status == 422
    assert (await api.get(f"{CM}/keep")).status == 200
    # dryRun=All (list) deletes nothing; a negative grace period means 1 s, as in kube
    r = await api.delete(f"{CM}/keep", json={"dryRun": ["All"]})
    assert r.status == 200 and (await api.get(f"{CM}/keep")).status == 200
    r = await api.delete(f"{CM}/keep", json={"gracePeriodSeconds": -1})
    assert r.status == 200 and (await api.get(f"{CM}/keep")).status == 404


# -- concurrent deletes ------------------------------------------------------------------------------

async def test_concurrent_deletes_of_one_object_are_200_or_404(api: TestClient) -> None:
    codes: list[int] = []
    for round_ in range(15):
        await make_cm(api, f"race-{round_}")
        rs = await asyncio.gather(*(api.delete(f"{CM}/race-{round_}") for _ in range(6)))
        codes += [r.status for r in rs]
    assert set(codes) <= {200, 404}, codes
    assert codes.count(200) == 15


async def test_collection_delete_racing_single_deletes_skips_what_is_gone(api: TestClient) -> None:
    for round_ in range(5):
        for i in range(10):
            r = await api.post(CM, json={**cm(f"c{round_}-{i}"), "metadata": {"name": f"c{round_}-{i}",
                                                                               "labels": {"r": str(round_)}}})
            assert r.status == 201
        singles = [api.delete(f"{CM}/c{round_}-{i}") for i in range(10)]
        rs = await asyncio.gather(api.delete(CM, params={"labelSelector": f"r={round_}"}), *singles)
        assert all(r.status in (200, 404) for r in rs), [r.status for r in rs]
        assert rs[0].status == 200
        left = (await (await api.get(CM, params={"labelSelector": f"r={round_}"})).json())["items"]
        assert left == []


# -- routes and query parameters ---------------------------------------------------------------------

async def test_post_to_an_item_url_is_405_and_creates_nothing(api: TestClient) -> None:
    r = await api.post(f"{CM}/x", json=cm("x"))
    assert r.status == 405
    assert (await r.json())["reason"] == "MethodNotAllowed"
    assert (await api.get(f"{CM}/x")).status == 404
    r = await api.put(CM, json=cm("x"))
    assert r.status == 405


@pytest.mark.parametrize(("query", "message"), [
    ({"timeoutSeconds": "abc"}, 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ({"limit": "9223372036854775808"}, 'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
    ({"limit": "1_0"}, 'strconv.ParseInt: parsing "1_0": invalid syntax'),
    ({"watch": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ({"allowWatchBookmarks": "2"}, 'strconv.ParseBool: parsing "2": invalid syntax'),
])
async def test_list_parameters_go_cannot_decode_are_400(api: TestClient, query: dict[str, str],
                                                        message: str) -> None:
    r = await api.get(CM, params=query)
    assert r.status == 400
    st = await r.json()
    assert st["reason"] == "BadRequest" and st["message"] == message


async def test_put_without_a_name_changes_nothing(api: TestClient) -> None:
    path = "/api/v1/namespaces/default/serviceaccounts/default"
    before = await (await api.get(path)).json()
    r = await api.put(path, json={"zzz": None})
    assert r.status == 400
    assert (await r.json())["message"] == ("the name of the object (default based on URL) was undeterminable: "
                                           "name must be provided")
    assert await (await api.get(path)).json() == before


async def test_long_urls_are_served(api: TestClient) -> None:
    await make_cm(api, "long")
    sel = ",".join(f"k{i}!=v{i}" for i in range(1200))  # about 12 KiB of label selector
    r = await api.get(CM, params={"labelSelector": sel})
    assert r.status == 200, await r.text()
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["long"]


# -- updates and deletes as kube answers them ------------------------------------------------------

async def test_update_with_resource_version_zero_is_unconditional(api: TestClient) -> None:
    obj = await make_cm(api, "u")
    await api.put(f"{CM}/u", json={**obj, "data": {"k": "other"}})
    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "0"}, "data": {"k": "mine"}}
    r = await api.put(f"{CM}/u", json=body)
    assert r.status == 200, await r.text()
    assert (await r.json())["data"] == {"k": "mine"}
    stale = {**obj, "data": {"k": "stale"}}
    assert (await api.put(f"{CM}/u", json=stale)).status == 409


async def test_delete_of_a_service_returns_the_service(api: TestClient) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    r = await api.post(SVC, json=svc)
    assert r.status == 201
    r = await api.delete(f"{SVC}/s")
    assert r.status == 200
    got = await r.json()
    assert got["kind"] == "Service" and got["metadata"]["name"] == "s"
    # a ConfigMap's delete still answers with a Status
    await make_cm(api, "c")
    st = await (await api.delete(f"{CM}/c")).json()
    assert st["kind"] == "Status" and st["status"] == "Success"


async def test_status_fields_in_go_order_and_a_trailing_newline(api: TestClient) -> None:
    r = await api.get(f"{CM}/missing")
    raw = await r.read()
    assert raw.endswith(b"}\n")
    assert list(json.loads(raw)) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details",
                                     "code"]
    obj = await (await api.post(CM, json=cm("n"))).read()
    lst = await (await api.get(CM)).read()
    assert obj.endswith(b"}\n") and lst.endswith(b"}\n")


async def test_a_warning_with_a_control_character_does_not_lose_the_reply(api: TestClient) -> None:
    body = cm("w")
    body["metadata"]["bad\x01field\nname"] = "x"
    r = await api.post(CM, json=body)
    assert r.status == 201, await r.text()
    warnings = r.headers.getall("Warning")
    assert warnings and all("\x01" not in w and "\n" not in w for w in warnings)
    assert "unknown field" in warnings[0]
    assert (await api.get(f"{CM}/w")).status == 200


async def test_many_warnings_stay_readable_by_python_clients(api: TestClient) -> None:
    # 200 unknown fields: 200 "unknown field" warnings would be more header lines than Python's
    # http.client (urllib3, the official client) accepts, and the client would drop the reply
    body = cm("many-warnings")
    body["metadata"].update({f"f{i}": "x" for i in range(200)})
    r = await api.post(CM, json=body)
    assert r.status == 201, await r.text()
    warnings = r.headers.getall("Warning")
    assert len(warnings) == MAX_WARNING_HEADERS
    assert warnings[0] == '299 - "unknown field \\"metadata.f0\\""'
    # long ones: cut to 256 characters each once they pass 4096 in all, as kube's recorder
    body = cm("long-warnings")
    body["metadata"].update({f"{i:02d}" + "x" * 400: "x" for i in range(30)})
    r = await api.post(CM, json=body)
    assert r.status == 201, await r.text()
    texts = [w.removeprefix('299 - "').removesuffix('"').replace('\\"', '"') for w in r.headers.getall("Warning")]
    assert all(len(t) <= 256 for t in texts) and 4096 <= sum(map(len, texts)) < 4096 + 256


def test_warning_headers_as_kubes_recorder() -> None:
    # each text once, empty ones skipped, kept whole while the total stays within 4096
    assert warning_headers(["a" * 300, "", "b", "a" * 300, 'q"']) == ["a" * 300, "b", 'q\\"']
    # past 4096 in all: every one cut to 256, and none after the 4096th character
    got = warning_headers([str(i) * 1000 for i in range(1, 10)])
    assert got == [str(i) * 256 for i in range(1, 10)][:16] and len(got) == 9
    got = warning_headers([f"{i:03d}" + "y" * 500 for i in range(40)])
    assert len(got) == 16 and all(len(t) == 256 for t in got)
    assert len(warning_headers([f"w{i}" for i in range(1000)])) == MAX_WARNING_HEADERS


async def test_server_side_apply_of_a_scale(api: TestClient) -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    assert (await api.post(DEPS, json=dep)).status == 201
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "d"}, "spec": {"replicas": 4}}
    r = await api.patch(f"{DEPS}/d/scale", params={"fieldManager": "hpa", "force": "true"}, data=json.dumps(scale),
                        headers={"Content-Type": "application/apply-patch+yaml"})
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["kind"] == "Scale" and got["spec"]["replicas"] == 4
    d = await (await api.get(f"{DEPS}/d")).json()
    assert d["spec"]["replicas"] == 4
    entry = [m for m in d["metadata"]["managedFields"] if m["manager"] == "hpa"]
    assert entry and entry[0]["operation"] == "Apply" and entry[0].get("subresource") == "scale"
    bad = {**scale, "kind": "Deployment"}
    r = await api.patch(f"{DEPS}/d/scale", params={"fieldManager": "hpa"}, data=json.dumps(bad),
                        headers={"Content-Type": "application/apply-patch+yaml"})
    assert r.status == 400


async def test_objects_over_the_store_limit_are_refused_as_etcd_does(api: TestClient) -> None:
    env = [{"name": f"E{i:05d}", "value": "v" * 90} for i in range(17000)]  # about 1.8 MB as JSON
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "huge"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "x", "env": env}]}}}}
    r = await api.post(DEPS, data=io.BytesIO(json.dumps(dep).encode()), headers={"Content-Type": "application/json"})
    assert r.status == 500
    st = await r.json()
    assert st["message"] == "etcdserver: request is too large" and "reason" not in st
    assert (await api.get(f"{DEPS}/huge")).status == 404


async def test_bodies_over_3_mib_are_413(api: TestClient) -> None:
    big = json.dumps(cm("big", k="x" * 100)).encode() + b" " * (3 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    for data in (io.BytesIO(big), chunks()):
        r = await api.post(CM, data=data, headers={"Content-Type": "application/json"})
        assert r.status == 413
        st = await r.json()
        assert st["reason"] == "RequestEntityTooLarge"
        assert st["message"] == "Request entity too large: limit is 3145728"
    assert (await api.get(f"{CM}/big")).status == 404


async def test_a_patch_of_the_wrong_type_is_an_invalid_patch(api: TestClient) -> None:
    await make_cm(api, "c")
    for ct in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        for fv in ("Strict", "Ignore"):
            r = await api.patch(f"{CM}/c", params={"fieldValidation": fv},
                                data=json.dumps({"metadata": {"labels": "invalid"}}), headers={"Content-Type": ct})
            assert r.status == 422, (ct, fv)
            st = await r.json()
            assert st["message"].startswith(' "" is invalid: patch: Invalid value: ')
            assert st["message"].endswith(": json: cannot unmarshal string into Go struct field "
                                          "ObjectMeta.metadata.labels of type map[string]string")
            assert st["details"]["causes"][0]["field"] == "patch"
    assert "map[metadata:map[labels:invalid]]" in st["message"]
    assert (await (await api.get(f"{CM}/c")).json()).get("metadata", {}).get("labels") is None


async def test_a_deep_patch_is_refused_in_go_words(api: TestClient) -> None:
    await make_cm(api, "c")
    body = '{"a":' + "[" * 100000 + "]" * 100000 + "}"
    r = await api.patch(f"{CM}/c", data=body, headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 400
    assert (await r.json())["message"] == "error decoding patch: invalid character '[' exceeded max depth"


async def test_an_error_answer_keeps_the_request_warnings(api: TestClient) -> None:
    r = await api.get("/api/v1/componentstatuses/nope")
    assert r.status >= 400
    assert any("ComponentStatus is deprecated" in w for w in r.headers.getall("Warning", []))
