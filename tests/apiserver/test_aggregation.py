"""The aggregation layer: the pure parts (endpoint resolution, front-proxy headers, kube's
ordering, the discovery conversion, discovery merging) and the proxy in-process (aiohttp's test
client, the in-memory store, a wardle backend on loopback with its own TLS)."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from tests.helpers.wardle import GROUP, GV, VERSION, WardleServer

from k8py.api import aggregator as agg
from k8py.api.registry import Registry
from k8py.apiserver import discovery
from k8py.apiserver import server as srv
from k8py.apiserver.aggregator import (
    ProxyClientCertificate,
    authentication_info,
    authentication_info_from_files,
    keep_authentication_info,
    publish_authentication_info,
)
from k8py.apiserver.aggregator_discovery import RemoteVersion, to_discovery_resources
from k8py.apiserver.authn import UserInfo
from k8py.config import ServerConfig
from k8py.pki import PKI, ensure_front_proxy_certificates
from k8py.storage.memory import MemoryStore

Obj = dict[str, Any]


def service(name: str = "api", ports: list[Obj] | None = None, type_: str = "ClusterIP") -> Obj:
    return {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"type": type_, "ports": ports if ports is not None else [{"name": "https", "port": 443}]}}


def slice_(port: int = 8443, name: str = "https", ready: Any = True, addrs: tuple[str, ...] = ("10.0.0.1",),
           svc: str = "api") -> Obj:
    cond = {} if ready is None else {"ready": ready}
    return {"metadata": {"name": f"{svc}-x", "namespace": "ns", "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": [{"addresses": [a], "conditions": cond} for a in addrs],
            "ports": [{"name": name, "port": port}]}


REF = agg.ServiceRef("ns", "api", 443)


# ----------------------------------------------------------------------------- pure parts


def test_resolve_endpoint_as_kube_with_aggregator_routing() -> None:
    assert agg.resolve_endpoint(service(), [slice_()], REF) == ("10.0.0.1", 8443)
    assert agg.resolve_endpoint(service(), [slice_(ready=None)], REF) == ("10.0.0.1", 8443)  # unset is ready
    # a random ready one of several; unready ones never
    rng = random.Random(1)
    got = {agg.resolve_endpoint(service(), [slice_(addrs=("10.0.0.1", "10.0.0.2"))], REF, rng) for _ in range(40)}
    assert got == {("10.0.0.1", 8443), ("10.0.0.2", 8443)}
    with pytest.raises(agg.ResolveError, match='no endpoints available for service "api"'):
        agg.resolve_endpoint(service(), [slice_(ready=False)], REF)
    with pytest.raises(agg.ResolveError, match='no endpoints available for service "api"'):
        agg.resolve_endpoint(service(), [], REF)
    with pytest.raises(agg.ResolveError, match='no endpoints available for service "api"'):
        agg.resolve_endpoint(service(), [slice_(name="other")], REF)  # no slice port with the Service port's name
    with pytest.raises(agg.ResolveError, match='no service port 443 found for service "api"'):
        agg.resolve_endpoint(service(ports=[{"name": "https", "port": 8443}]), [slice_()], REF)
    with pytest.raises(agg.ResolveError, match='unsupported service type "ExternalName"'):
        agg.resolve_endpoint(service(type_="ExternalName"), [slice_()], REF)
    with pytest.raises(agg.ResolveError, match='service "api" not found'):
        agg.resolve_endpoint(None, [], REF)


def test_available_endpoint_and_slices_of_a_service() -> None:
    assert agg.has_available_endpoint("https", [slice_()])
    assert not agg.has_available_endpoint("https", [slice_(ready=False)])
    assert not agg.has_available_endpoint("", [slice_()])
    assert agg.slices_of([slice_(), slice_(svc="other")], "ns", "api") == [slice_()]


def test_service_ref_defaults_and_local() -> None:
    assert agg.service_ref({"spec": {"service": {"namespace": "a", "name": "b"}}}) == agg.ServiceRef("a", "b", 443)
    assert agg.service_ref({"spec": {"group": "g"}}) is None
    assert agg.server_name(REF) == "api.ns.svc"


def test_auth_proxy_headers_as_kube_sets_them() -> None:
    got = agg.auth_proxy_headers("alice", "u-1", ("dev", "system:authenticated"),
                                 {"scopes.example.com/x%y": ("a", "b"), "plain": ("c",)})
    assert got == [("X-Remote-User", "alice"), ("X-Remote-Uid", "u-1"), ("X-Remote-Group", "dev"),
                   ("X-Remote-Group", "system:authenticated"),
                   ("X-Remote-Extra-scopes.example.com%2Fx%25y", "a"),
                   ("X-Remote-Extra-scopes.example.com%2Fx%25y", "b"), ("X-Remote-Extra-plain", "c")]
    assert agg.auth_proxy_headers("bob", "", (), {}) == [("X-Remote-User", "bob")]
    assert agg.is_auth_proxy_header("x-remote-extra-foo") and agg.is_auth_proxy_header("X-Remote-User")
    assert not agg.is_auth_proxy_header("X-Remote-Addr")


def apiservice(group: str, version: str, gpm: int, vp: int) -> Obj:
    return {"metadata": {"name": f"{version}.{group}"},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": gpm, "versionPriority": vp,
                     "service": {"namespace": "ns", "name": "api"}}}


def test_sorted_by_group_and_version_as_kube() -> None:
    svcs = [apiservice("b.example.com", "v1", 100, 10), apiservice("a.example.com", "v1", 100, 10),
            apiservice("c.example.com", "v1beta1", 2000, 5), apiservice("c.example.com", "v1", 10, 5),
            apiservice("c.example.com", "v2alpha1", 10, 5), apiservice("c.example.com", "v1alpha1", 10, 20),
            apiservice("c.example.com", "v2", 10, 5)]
    got = [[a["metadata"]["name"] for a in g] for g in agg.sorted_by_group_and_version(svcs)]
    # groups by their highest priority, then name; versions by priority, then GA > beta > alpha, newer first
    assert got == [["v1alpha1.c.example.com", "v2.c.example.com", "v1.c.example.com", "v1beta1.c.example.com",
                    "v2alpha1.c.example.com"],
                   ["v1.a.example.com"], ["v1.b.example.com"]]


def test_discovery_conversion_as_kube() -> None:
    got = to_discovery_resources([
        {"name": "flunders", "singularName": "flunder", "namespaced": True, "kind": "Flunder",
         "verbs": ["get", "list"], "shortNames": ["fl"]},
        {"name": "flunders/status", "namespaced": True, "kind": "Flunder", "verbs": ["get"]},
        {"name": "orphans/scale", "namespaced": False, "group": "autoscaling", "version": "v1", "kind": "Scale",
         "verbs": ["get"]}])
    assert got == [
        {"resource": "flunders", "responseKind": {"group": "", "version": "", "kind": "Flunder"},
         "scope": "Namespaced", "singularResource": "flunder", "verbs": ["get", "list"], "shortNames": ["fl"],
         "subresources": [{"subresource": "status", "responseKind": {"group": "", "version": "", "kind": "Flunder"},
                           "verbs": ["get"]}]},
        {"resource": "orphans", "responseKind": {"group": "", "version": "", "kind": ""}, "scope": "Cluster",
         "verbs": [], "subresources": [{"subresource": "scale", "responseKind": {
             "group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get"]}]}]


def test_discovery_documents_merge_the_remote_groups() -> None:
    reg = Registry()
    res = to_discovery_resources([{"name": "flunders", "namespaced": True, "kind": "Flunder", "verbs": ["get"]}])
    remote = [(apiservice(GROUP, "v1beta1", 1000, 20), RemoteVersion(GROUP, "v1beta1", res, False)),
              (apiservice(GROUP, "v1alpha1", 1000, 10), RemoteVersion(GROUP, "v1alpha1", [], True))]
    groups = discovery.api_group_list(reg, remote)["groups"]
    assert groups[-1] == {"name": GROUP, "versions": [{"groupVersion": f"{GROUP}/v1beta1", "version": "v1beta1"},
                                                      {"groupVersion": f"{GROUP}/v1alpha1", "version": "v1alpha1"}],
                          "preferredVersion": {"groupVersion": f"{GROUP}/v1beta1", "version": "v1beta1"}}
    assert [g["name"] for g in groups[:-1]] == [g["name"] for g in discovery.api_group_list(reg)["groups"]]
    assert discovery.api_group(reg, GROUP, remote)["preferredVersion"]["version"] == "v1beta1"  # type: ignore[index]
    assert discovery.api_group(reg, GROUP) is None
    items = discovery.aggregated(reg, False, "v2", remote)["items"]
    assert items[-1] == {"metadata": {"name": GROUP, "creationTimestamp": None}, "versions": [
        {"version": "v1beta1", "resources": res, "freshness": "Current"},
        {"version": "v1alpha1", "resources": [], "freshness": "Stale"}]}
    assert all(i["metadata"]["name"] != GROUP for i in discovery.aggregated(reg, True, "v2", remote)["items"])


def test_authentication_configmap_data() -> None:
    cm = authentication_info("CLIENT-CA", "FRONT-CA")
    assert cm["metadata"] == {"name": "extension-apiserver-authentication", "namespace": "kube-system"}
    assert cm["data"] == {"client-ca-file": "CLIENT-CA", "requestheader-client-ca-file": "FRONT-CA",
                          "requestheader-allowed-names": '["front-proxy-client"]',
                          "requestheader-username-headers": '["X-Remote-User"]',
                          "requestheader-uid-headers": '["X-Remote-Uid"]',
                          "requestheader-group-headers": '["X-Remote-Group"]',
                          "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]'}


async def test_the_authentication_configmap_is_kept_as_it_should_be(tmp_path: Path) -> None:
    """Changed or deleted, it is written again at once; a rotated CA file reaches it at the next
    resync (kube's ClusterAuthenticationTrustController)."""
    from tests.helpers.cluster import InProcessCluster

    from k8py.client.errors import NotFoundError

    client_ca, front_ca = tmp_path / "ca.crt", tmp_path / "front-proxy-ca.crt"
    client_ca.write_text("CLIENT-CA")
    front_ca.write_text("FRONT-CA")
    cm_kind = ("v1", "ConfigMap")
    async with InProcessCluster() as c:
        await publish_authentication_info(c.cp, authentication_info_from_files(str(client_ca), str(front_ca)))
        # an hour between resyncs: only the watch can write it back within the test's waits
        keeper = asyncio.create_task(keep_authentication_info(c.cp, str(client_ca), str(front_ca), resync=3600))
        try:
            async def data() -> Obj | None:
                try:
                    return (await c.client.get(cm_kind, "extension-apiserver-authentication", "kube-system"))["data"]
                except NotFoundError:
                    return None

            want = authentication_info("CLIENT-CA", "FRONT-CA")["data"]
            assert await data() == want
            await c.client.patch(cm_kind, "extension-apiserver-authentication",
                                 {"data": {"requestheader-allowed-names": '["mallory"]'}}, "kube-system")
            await c.until(lambda: _eq(data(), want), timeout=10, what="the changed ConfigMap written back")
            await c.client.delete(cm_kind, "extension-apiserver-authentication", "kube-system")
            await c.until(lambda: _eq(data(), want), timeout=10, what="the deleted ConfigMap written again")
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        keeper = asyncio.create_task(keep_authentication_info(c.cp, str(client_ca), str(front_ca), resync=0.5))
        try:
            client_ca.write_text("ROTATED-CA")
            rotated = authentication_info("ROTATED-CA", "FRONT-CA")["data"]
            await c.until(lambda: _eq(data(), rotated), timeout=10, what="the rotated CA published")
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)


async def _eq(got: Any, want: Any) -> bool:
    return bool(await got == want)


def test_front_proxy_certificates(tmp_path: Path) -> None:
    from cryptography import x509

    pki = PKI.in_dir(str(tmp_path))
    files = ensure_front_proxy_certificates(pki)
    ca = x509.load_pem_x509_certificate(Path(files.ca_cert).read_bytes())
    cert = x509.load_pem_x509_certificate(Path(files.client_cert).read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=front-proxy-client"
    assert ca.subject.rfc4514_string().startswith("CN=k8py-front-proxy-ca@")
    again = ensure_front_proxy_certificates(pki)  # reused, not made again
    assert again == files and Path(files.client_cert).read_bytes() == cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.PEM)
    assert all(Path(p).stat().st_mode & 0o777 == 0o600 for p in (files.ca_cert, files.client_cert))


# ----------------------------------------------------------------------------- the proxy in-process


class Authn:
    """Whoever the test says (X-Test-User, X-Test-Groups), with an extra for the headers."""

    def authenticate(self, request: web.Request) -> UserInfo | None:
        name = request.headers.get("X-Test-User")
        if not name:
            return None
        groups = tuple(g for g in request.headers.get("X-Test-Groups", "").split(",") if g)
        return UserInfo(name, uid="uid-" + name, groups=(*groups, "system:authenticated"),
                        extra={"example.com/team": ("blue",)})


ADMIN = {"X-Test-User": "root", "X-Test-Groups": "system:masters"}


@pytest.fixture
def v2_backend() -> bool:
    """Whether the backend serves aggregated discovery (apidiscovery.k8s.io/v2) at /apis."""
    return False


@pytest.fixture
async def env(tmp_path: Path, v2_backend: bool) -> AsyncIterator[tuple[TestClient, WardleServer]]:
    files = ensure_front_proxy_certificates(PKI.in_dir(str(tmp_path / "tls")))
    backend = WardleServer(Path(files.ca_cert).read_text(), aggregated_discovery=v2_backend)
    await backend.start()
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store, authenticator=Authn())
    await cp.bootstrap()
    assert cp.http.aggregator is not None
    cp.http.aggregator.proxy_cert = ProxyClientCertificate(files.client_cert, files.client_key)
    tasks = await cp.http.aggregator.start()
    cp.http.ready = True
    try:
        async with TestClient(TestServer(cp.http.build())) as c:
            for path, obj in (
                    ("/api/v1/namespaces", {"metadata": {"name": "wardle"}}),
                    ("/api/v1/namespaces/wardle/services", {"metadata": {"name": "api"}, "spec": {
                        "ports": [{"name": "https", "port": 443, "targetPort": backend.port}]}}),
                    ("/apis/discovery.k8s.io/v1/namespaces/wardle/endpointslices", {
                        "metadata": {"name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
                        "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"]}],
                        "ports": [{"name": "https", "port": backend.port}]}),
                    ("/apis/apiregistration.k8s.io/v1/apiservices", {
                        "metadata": {"name": f"{VERSION}.{GROUP}"},
                        "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000,
                                 "versionPriority": 15, "service": {"namespace": "wardle", "name": "api"},
                                 "caBundle": base64.b64encode(backend.ca_pem.encode()).decode()}})):
                r = await c.post(path, json=obj, headers=ADMIN)
                assert r.status == 201, await r.text()
            c.cp = cp  # type: ignore[attr-defined]
            yield c, backend
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
        await backend.stop()


async def set_available(c: TestClient, status: str) -> None:
    path = f"/apis/apiregistration.k8s.io/v1/apiservices/{VERSION}.{GROUP}"
    a = await (await c.get(path, headers=ADMIN)).json()
    a["status"] = {"conditions": [{"type": "Available", "status": status, "reason": "Test", "message": "t",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    r = await c.put(path + "/status", json=a, headers=ADMIN)
    assert r.status == 200, await r.text()


async def eventually(cond: Any, timeout: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await cond()
        if got:
            return got
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


FLUNDERS = f"/apis/{GV}/namespaces/wardle/flunders"


async def test_proxy_only_when_available(env: tuple[TestClient, WardleServer]) -> None:
    c, backend = env
    r = await c.get(FLUNDERS, headers=ADMIN)
    assert (r.status, await r.text()) == (503, "service unavailable\n")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert backend.seen == []
    await set_available(c, "True")

    async def listed() -> Any:
        r = await c.get(FLUNDERS, headers=ADMIN)
        return r.status == 200 and await r.json()

    doc = await eventually(listed)
    assert doc["kind"] == "FlunderList"


async def test_proxied_request_carries_the_user_not_the_client_s_credentials(
        env: tuple[TestClient, WardleServer]) -> None:
    c, backend = env
    await set_available(c, "True")

    async def created() -> Any:
        r = await c.post(FLUNDERS, json={"apiVersion": GV, "kind": "Flunder", "metadata": {"name": "f"}},
                         headers={**ADMIN, "Authorization": "Bearer secret", "X-Remote-User": "mallory",
                                  "X-Remote-Group": "system:masters", "X-Remote-Extra-Evil": "1"})
        return r.status == 201 and await r.json()

    obj = await eventually(created)
    assert obj["metadata"]["namespace"] == "wardle"
    seen = next(s for s in backend.seen if s.method == "POST")
    assert (seen.path, seen.user, seen.cert_cn) == (f"{FLUNDERS}", "root", "front-proxy-client")
    assert seen.groups == ["system:masters", "system:authenticated"]
    assert seen.extra == {"example.com%2fteam": ["blue"]}
    assert seen.headers["X-Remote-Uid"] == "uid-root"
    assert "Authorization" not in seen.headers and "X-Test-User" in seen.headers
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    # the backend's answer as it is: its status, its Status body
    r = await c.get(f"{FLUNDERS}/nope", headers=ADMIN)
    assert r.status == 404 and (await r.json())["message"] == f'flunders.{GROUP} "nope" not found'


async def test_no_endpoints_or_upgrade(env: tuple[TestClient, WardleServer]) -> None:
    c, _ = env
    await set_available(c, "True")
    await eventually(lambda: _status(c, FLUNDERS, 200))
    r = await c.get(FLUNDERS, headers={**ADMIN, "Connection": "Upgrade", "Upgrade": "h2c"})
    assert r.status == 501 and "does not proxy upgrade requests (Upgrade: h2c)" in (await r.json())["message"]
    # the slice given to another Service, then back: the proxy follows its label
    slice_path = "/apis/discovery.k8s.io/v1/namespaces/wardle/endpointslices/api-1"
    for svc, want in (("other", 503), ("api", 200)):
        es = await (await c.get(slice_path, headers=ADMIN)).json()
        es["metadata"]["labels"]["kubernetes.io/service-name"] = svc
        assert (await c.put(slice_path, json=es, headers=ADMIN)).status == 200
        await eventually(lambda want=want: _status(c, FLUNDERS, want))  # type: ignore[misc]
    r = await c.delete(slice_path, headers=ADMIN)
    assert r.status == 200
    await eventually(lambda: _status(c, FLUNDERS, 503))
    assert await (await c.get(FLUNDERS, headers=ADMIN)).text() == "service unavailable\n"


async def test_backend_refusing_is_503_with_the_dial_error(env: tuple[TestClient, WardleServer]) -> None:
    c, backend = env
    await set_available(c, "True")
    await eventually(lambda: _status(c, FLUNDERS, 200))
    port = backend.port
    await backend.stop()
    r = await c.get(FLUNDERS, headers=ADMIN)
    assert r.status == 503
    assert await r.text() == f"dial tcp 127.0.0.1:{port}: connect: connection refused\n"


async def test_discovery_fetched_from_the_backend(env: tuple[TestClient, WardleServer]) -> None:
    c, backend = env
    accept = {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"}

    async def entry() -> Any:
        doc = await (await c.get("/apis", headers={**ADMIN, **accept})).json()
        return next((i for i in doc["items"] if i["metadata"]["name"] == GROUP), None)

    got = await eventually(entry)  # listed while unavailable: nothing fetched yet, Stale
    assert got["versions"] == [{"version": VERSION, "resources": [], "freshness": "Stale"}]
    await set_available(c, "True")

    async def fresh() -> Any:
        e = await entry()
        return e is not None and e["versions"][0]["freshness"] == "Current" and e

    got = await eventually(fresh)
    assert [r["resource"] for r in got["versions"][0]["resources"]] == ["flunders"]
    assert got["versions"][0]["resources"][0]["subresources"][0]["subresource"] == "status"
    assert any(s.path == f"/apis/{GV}" and s.user == "system:kube-aggregator" for s in backend.seen)
    groups = (await (await c.get("/apis", headers=ADMIN)).json())["groups"]
    assert groups[-1]["name"] == GROUP
    g = await (await c.get(f"/apis/{GROUP}", headers=ADMIN)).json()
    assert g["preferredVersion"] == {"groupVersion": GV, "version": VERSION}
    paths = (await (await c.get("/", headers=ADMIN)).json())["paths"]
    assert f"/apis/{GROUP}" in paths and f"/apis/{GV}" in paths

    # OpenAPI v3: the backend's document of the group-version, listed in the index with its hash
    async def openapi_listed() -> Any:
        index = await (await c.get("/openapi/v3", headers=ADMIN)).json()
        return index["paths"].get(f"apis/{GV}")

    url = (await eventually(openapi_listed))["serverRelativeURL"]
    assert url.startswith(f"/openapi/v3/apis/{GV}?hash=")
    index = await (await c.get("/openapi/v3", headers=ADMIN)).json()
    assert "apis/apps/v1" in index["paths"]  # k8py's own still there
    r = await c.get(url, headers=ADMIN)
    assert r.status == 200 and r.headers["Cache-Control"] == "public, immutable"
    assert "com.example.wardle.v1alpha1.Flunder" in (await r.json())["components"]["schemas"]
    # the APIService deleted: gone from discovery, and its paths are k8py's 404 again
    r = await c.delete(f"/apis/apiregistration.k8s.io/v1/apiservices/{VERSION}.{GROUP}", headers=ADMIN)
    assert r.status == 200
    await eventually(lambda: _missing(entry))
    assert (await c.get(FLUNDERS, headers=ADMIN)).status == 404


@pytest.mark.parametrize("v2_backend", [True])
async def test_discovery_from_the_backend_s_aggregated_document(env: tuple[TestClient, WardleServer]) -> None:
    """A backend serving apidiscovery.k8s.io/v2 at /apis is read from there, its entries as they are."""
    c, backend = env
    await set_available(c, "True")
    accept = {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"}

    async def fresh() -> Any:
        doc = await (await c.get("/apis", headers={**ADMIN, **accept})).json()
        e = next((i for i in doc["items"] if i["metadata"]["name"] == GROUP), None)
        return e is not None and e["versions"][0]["freshness"] == "Current" and e

    got = await eventually(fresh)
    assert got["versions"][0]["resources"][0]["categories"] == ["from-v2"]
    assert got["versions"][0]["resources"][0]["responseKind"] == {"group": GROUP, "version": VERSION,
                                                                  "kind": "Flunder"}
    asked = [s.path for s in backend.seen if s.user == "system:kube-aggregator"]
    assert "/apis" in asked and f"/apis/{GV}" not in asked


async def _status(c: TestClient, path: str, want: int) -> bool:
    return (await c.get(path, headers=ADMIN)).status == want


async def _missing(entry: Any) -> bool:
    return await entry() is None


async def test_websocket_relayed(env: tuple[TestClient, WardleServer]) -> None:
    c, backend = env
    await set_available(c, "True")
    await eventually(lambda: _status(c, FLUNDERS, 200))
    async with c.ws_connect(f"{FLUNDERS}/f/echo", headers=ADMIN, protocols=("v1.echo.wardle", "other")) as ws:
        assert ws.protocol == "v1.echo.wardle"
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "HELLO"
    seen = next(s for s in backend.seen if s.path.endswith("/f/echo"))
    assert seen.user == "root" and "Authorization" not in seen.headers
    # a backend that refuses the upgrade: its answer as it is
    r = await c.get(f"{FLUNDERS}/nope/status", headers={
        **ADMIN, "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status == 404 and (await r.json())["message"] == f'flunders.{GROUP} "nope" not found'


def test_controller_manager_takes_the_proxy_client_certificate(caplog: pytest.LogCaptureFixture) -> None:
    """``k8py controller-manager`` run alone: the availability check's certificate as flags."""
    from k8py.cli.main import build_parser, main

    args = build_parser().parse_args(["controller-manager", "--proxy-client-cert-file", "c.crt",
                                      "--proxy-client-key-file", "c.key"])
    assert (args.proxy_client_cert_file, args.proxy_client_key_file) == ("c.crt", "c.key")
    assert main(["controller-manager", "--proxy-client-cert-file", "c.crt"]) == 2
    assert "--proxy-client-cert-file and --proxy-client-key-file go together" in caplog.text


def test_a_joining_server_gets_the_front_proxy_ca(tmp_path: Path) -> None:
    """Every server of a cluster proxies with a certificate of the same front-proxy CA."""
    from k8py import serverjoin as sj
    from k8py.pki import ensure_pki

    config = ServerConfig(data_dir=str(tmp_path / "first"))
    pki = ensure_pki(config)
    files = ensure_front_proxy_certificates(pki)
    tok = sj.ensure_server_token(config.data_dir)
    carried = sj.decrypt(tok.secret, sj.ServerBootstrap(config.data_dir).payload())
    assert carried["tls/front-proxy-ca.crt"] == Path(files.ca_cert).read_bytes()
    assert "tls/front-proxy-ca.key" in carried and "tls/front-proxy-client.crt" not in carried


async def test_a_ca_bundle_that_does_not_load_is_500(env: tuple[TestClient, WardleServer]) -> None:
    """kube's transport building error: the request is answered 500 with its text."""
    c, _ = env
    await set_available(c, "True")
    await eventually(lambda: _status(c, FLUNDERS, 200))
    path = f"/apis/apiregistration.k8s.io/v1/apiservices/{VERSION}.{GROUP}"
    a = await (await c.get(path, headers=ADMIN)).json()
    a["spec"]["caBundle"] = base64.b64encode(b"not a certificate").decode()
    assert (await c.put(path, json=a, headers=ADMIN)).status == 200
    await eventually(lambda: _status(c, FLUNDERS, 500))
    assert (await (await c.get(FLUNDERS, headers=ADMIN)).text()).startswith(
        "unable to load root certificates: unable to parse bytes as PEM block")


async def test_spdy_upgrade_piped_to_the_backend(env: tuple[TestClient, WardleServer]) -> None:
    """kubectl's SPDY/3.1 fallback: the upgrade goes on with the front-proxy headers and
    certificate, and once the backend switched protocols bytes flow both ways."""
    c, backend = env
    await set_available(c, "True")
    await eventually(lambda: _status(c, FLUNDERS, 200))
    heads: list[tuple[bytes, Any]] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        heads.append((await r.readuntil(b"\r\n\r\n"), w.get_extra_info("peercert")))
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
        while data := await r.read(1024):
            w.write(data.upper())
            await w.drain()
        w.close()

    spdy_backend = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=backend.ssl_context())
    port = spdy_backend.sockets[0].getsockname()[1]
    slice_path = "/apis/discovery.k8s.io/v1/namespaces/wardle/endpointslices/api-1"
    es = await (await c.get(slice_path, headers=ADMIN)).json()
    es["ports"][0]["port"] = port
    assert (await c.put(slice_path, json=es, headers=ADMIN)).status == 200
    request = (f"POST {FLUNDERS}/f/attach HTTP/1.1\r\nHost: k8py\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
               "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Test-User: root\r\n"
               "X-Test-Groups: system:masters\r\nContent-Length: 0\r\n\r\n").encode()
    assert c.server.host is not None and c.server.port is not None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:  # until the slice's new port reached the proxy (before: the wardle server refuses)
            r, w = await asyncio.open_connection(c.server.host, c.server.port)
            w.write(request)
            head = await r.readuntil(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 101"):
                break
            w.close()
            await w.wait_closed()
            assert loop.time() < deadline, head
            await asyncio.sleep(0.05)
        assert b"X-Stream-Protocol-Version: v4.channel.k8s.io" in head
        w.write(b"hello")
        assert await asyncio.wait_for(r.readexactly(5), 5) == b"HELLO"
        w.close()
        await w.wait_closed()
        sent, cert = heads[-1]
        assert sent.startswith(f"POST {FLUNDERS}/f/attach HTTP/1.1\r\n".encode())
        assert b"\r\nX-Remote-User: root\r\n" in sent and b"X-Test-User: root" in sent
        assert sent.count(b"X-Stream-Protocol-Version") == 1
        assert dict(x[0] for x in cert["subject"])["commonName"] == "front-proxy-client"
    finally:
        spdy_backend.close()
        await spdy_backend.wait_closed()
