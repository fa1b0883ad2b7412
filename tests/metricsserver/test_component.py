"""metrics-server against an in-process API server and a real kubelet API (the agent's server
over a fake runtime): it registers its Service, EndpointSlice and APIService, scrapes
``/metrics/resource`` and serves NodeMetrics and PodMetrics over HTTPS to callers it
authenticates as extension API servers do (the front proxy's certificate and headers, a client
certificate, a token) and authorizes with SubjectAccessReviews."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from tests.helpers.cluster import InProcessCluster
from tests.kubelet.test_server import FakeRuntime, make_certs

from k8py import pki as pki_mod
from k8py.client.config import ClientConfig
from k8py.client.errors import NotFoundError
from k8py.config import ServerConfig
from k8py.kubelet.runtime.types import ContainerStats
from k8py.kubelet.server import KubeletServer
from k8py.metricsserver.auth import AuthConfig, Authorizer, UserInfo
from k8py.metricsserver.component import APISERVICE, SLICE, MetricsServer, Options, kubelet_client

NODE = "node-1"


@dataclass
class Env:
    cluster: InProcessCluster
    ms: MetricsServer
    rt: FakeRuntime
    front_proxy: tuple[str, str]  # cert, key files
    client_cert: tuple[str, str]
    other_client: tuple[str, str]  # signed by the front-proxy CA but named otherwise
    ca_file: str
    reviews: list[dict[str, Any]]
    stop: asyncio.Event
    task: asyncio.Task[None]
    kubelet_ca: str

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.ms.port}"

    def ssl(self, cert: tuple[str, str] | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx

    async def get(self, path: str, cert: tuple[str, str] | None = None, headers: dict[str, str] | None = None,
                  method: str = "GET") -> tuple[int, Any]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl(cert))) as s, \
                s.request(method, self.base + path, headers=headers or {}) as r:
            body = await r.read()
            try:
                return r.status, json.loads(body)
            except ValueError:
                return r.status, body.decode()

    async def as_user(self, path: str, user: str, *groups: str, accept: str = "") -> tuple[int, Any]:
        h = {"X-Remote-User": user}
        for g in groups:
            h.setdefault("X-Remote-Group", g)
        if accept:
            h["Accept"] = accept
        return await self.get(path, self.front_proxy, h)


def _write(tmp: Path, name: str, pair: tuple[bytes, bytes]) -> tuple[str, str]:
    (tmp / f"{name}.crt").write_bytes(pair[0])
    (tmp / f"{name}.key").write_bytes(pair[1])
    return str(tmp / f"{name}.crt"), str(tmp / f"{name}.key")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    kube = make_certs(tmp_path / "kube")  # the cluster CA: kubelet serving, client certificates
    front = pki_mod.ensure_pki(ServerConfig(data_dir=str(tmp_path / "front")))  # a front-proxy CA
    proxy_cert = _write(tmp_path, "proxy", pki_mod.issue_client_certificate(front, "front-proxy-client"))
    other = _write(tmp_path, "other", pki_mod.issue_client_certificate(front, "someone-else"))
    client_cert = _write(tmp_path, "carol", pki_mod.issue_client_certificate(kube.pki, "carol", ("team",)))
    ms_cert, ms_key = pki_mod.issue_client_certificate(kube.pki, "system:metrics-server")
    rt = FakeRuntime(tmp_path / "logs")
    pods: list[dict[str, Any]] = []
    kubelet = KubeletServer(cast(Any, rt), lambda: pods, node_name=NODE, host="127.0.0.1", port=0,
                            cert_file=kube.serving_cert, key_file=kube.serving_key, client_ca_file=kube.pki.ca_cert)
    await kubelet.start()
    async with InProcessCluster(controllers=[]) as c:
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
              "data": {"client-ca-file": Path(kube.pki.ca_cert).read_text(),
                       "requestheader-client-ca-file": Path(front.ca_cert).read_text(),
                       "requestheader-allowed-names": '["front-proxy-client"]',
                       "requestheader-username-headers": '["X-Remote-User"]',
                       "requestheader-group-headers": '["X-Remote-Group"]',
                       "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]'}}
        try:
            await c.client.create(("v1", "ConfigMap"), cm, "kube-system")
        except Exception:  # noqa: BLE001 - the API server may have published its own: ours replaces it
            cur = await c.client.get(("v1", "ConfigMap"), "extension-apiserver-authentication", "kube-system")
            await c.client.update(("v1", "ConfigMap"), {**cur, "data": cm["data"]}, "kube-system")
        node = await c.client.create(("v1", "Node"), {"apiVersion": "v1", "kind": "Node",
                                                      "metadata": {"name": NODE, "labels": {"role": "worker"}}})
        node["status"] = {"addresses": [{"type": "Hostname", "address": NODE},
                                        {"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}},
                          "conditions": [{"type": "Ready", "status": "True"}]}
        await c.client.update_status(("v1", "Node"), node)
        for name, labels in (("burner", {"app": "burn"}), ("idle", {"app": "idle"}), ("pending", {})):
            p = await c.client.create(("v1", "Pod"), {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "busybox"}]}}, "default")
            if name != "pending":
                p["status"] = {"phase": "Running"}
                await c.client.update_status(("v1", "Pod"), p, "default")
            pods.append(p)
        reviews: list[dict[str, Any]] = []
        ms = MetricsServer(c.client, Options(listen_host="127.0.0.1", port=0, advertise="127.0.0.1",
                                             cert_dir=str(tmp_path / "ms-tls"), resolution=1.0, scrape_timeout=0.9),
                           kubelet_client(kube.pki.ca_cert, ClientConfig(server="https://unused", cert_data=ms_cert,
                                                                         key_data=ms_key)))
        real_review = ms.api.authorizer.review

        async def recording(spec: dict[str, Any]) -> tuple[bool, str]:
            reviews.append(spec)
            if spec.get("user") == "dave":  # the in-process API server allows all: one user it refuses
                return False, "dave may not"
            return await real_review(spec)

        ms.api.authorizer = Authorizer(recording)
        stop = asyncio.Event()
        task = asyncio.create_task(ms.run(stop))
        env = Env(c, ms, rt, proxy_cert, client_cert, other, "", reviews, stop, task, kube.pki.ca_cert)
        try:
            await c.until(lambda: ms.files is not None and ms.port, what="metrics-server listening")
            assert ms.files is not None
            env.ca_file = ms.files.ca_file
            yield env
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await kubelet.stop()


def burn(env: Env) -> None:
    """The burner uses half a core, the idle one nothing, from now on (fake runtime's stats)."""
    rt = env.rt
    b = rt.add("default", "burner", "", "main")
    i = rt.add("default", "idle", "", "main")
    p = rt.add("default", "pending", "", "main")
    t0 = time.time()

    class Growing(dict[str, ContainerStats]):
        def get(self, cid: str, default: Any = None) -> ContainerStats | None:  # type: ignore[override]
            t = time.time()
            if cid == b.id:
                return ContainerStats(t, 5_000_000_000 + int((t - t0) * 500_000_000), 20 << 20)
            if cid in (i.id, p.id):
                return ContainerStats(t, 1_000_000, 1 << 20)
            return default

    rt.stats = Growing()


async def test_registers_itself(env: Env) -> None:
    c = env.cluster.client
    await env.cluster.until(lambda: _exists(c, ("apiregistration.k8s.io/v1", "APIService"), APISERVICE, None),
                            what="the APIService")
    a = await c.get(("apiregistration.k8s.io/v1", "APIService"), APISERVICE)
    assert a["spec"]["service"] == {"name": "metrics-server", "namespace": "kube-system", "port": 443}
    assert (a["spec"]["group"], a["spec"]["version"]) == ("metrics.k8s.io", "v1beta1")
    assert base64.b64decode(a["spec"]["caBundle"]) == Path(env.ca_file).read_bytes()
    svc = await c.get(("v1", "Service"), "metrics-server", "kube-system")
    assert svc["spec"]["ports"][0]["port"] == 443 and svc["spec"]["ports"][0]["targetPort"] == "https"
    assert not svc["spec"].get("selector")
    sl = await c.get(("discovery.k8s.io/v1", "EndpointSlice"), SLICE, "kube-system")
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "metrics-server"
    assert sl["endpoints"][0]["addresses"] == ["127.0.0.1"] and sl["ports"][0]["port"] == env.ms.port
    # a stale slice (another port) is put right on the next publish
    sl["ports"][0]["port"] = 1
    await c.update(("discovery.k8s.io/v1", "EndpointSlice"), sl, "kube-system")
    await env.ms.publish()
    sl = await c.get(("discovery.k8s.io/v1", "EndpointSlice"), SLICE, "kube-system")
    assert sl["ports"][0]["port"] == env.ms.port


async def _exists(c: Any, kind: Any, name: str, ns: str | None) -> bool:
    try:
        await c.get(kind, name, ns)
        return True
    except NotFoundError:
        return False


async def test_metrics_served_through_front_proxy(env: Env) -> None:
    burn(env)

    async def node_listed() -> Any:
        st, body = await env.as_user("/apis/metrics.k8s.io/v1beta1/nodes", "alice", "system:masters")
        return body if st == 200 and body["items"] else None

    nodes = await env.cluster.until(node_listed, timeout=20, what="node metrics")
    (item,) = nodes["items"]
    assert nodes["kind"] == "NodeMetricsList" and nodes["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert item["metadata"]["name"] == NODE and item["metadata"]["labels"] == {"role": "worker"}
    assert item["usage"]["cpu"].endswith(("n", "u", "m")) or item["usage"]["cpu"].isdigit()
    assert item["window"].endswith("s")

    async def pods_listed() -> Any:
        st, body = await env.as_user("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", "alice",
                                     "system:masters")
        return body if st == 200 and len(body["items"]) == 2 else None

    pods = await env.cluster.until(pods_listed, timeout=20, what="pod metrics of the two running pods")
    by = {p["metadata"]["name"]: p for p in pods["items"]}
    assert set(by) == {"burner", "idle"}  # not the pending pod: metrics-server watches running pods
    from k8py.api.quantity import parse_quantity

    burner = parse_quantity(by["burner"]["containers"][0]["usage"]["cpu"]).milli_value()
    idle = parse_quantity(by["idle"]["containers"][0]["usage"]["cpu"]).milli_value()
    assert 400 <= burner <= 600 and idle <= 5, (burner, idle)
    assert by["burner"]["containers"][0]["usage"]["memory"] == "20Mi"
    # one pod; a label selector; a field selector; all namespaces
    st, one = await env.as_user("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner", "alice",
                                "system:masters")
    assert st == 200 and one["kind"] == "PodMetrics" and one["metadata"]["namespace"] == "default"
    st, sel = await env.as_user("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Didle", "alice",
                                "system:masters")
    assert st == 200 and [p["metadata"]["name"] for p in sel["items"]] == ["idle"]
    st, sel = await env.as_user("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dburner", "alice",
                                "system:masters")
    assert [p["metadata"]["name"] for p in sel["items"]] == ["burner"]
    st, bad = await env.as_user("/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%3D%3D%3Db", "alice",
                                "system:masters")
    assert st == 400 and bad["reason"] == "BadRequest"
    # not found: a pod without metrics, a pod that does not exist, a node that does not exist
    st, nf = await env.as_user("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/pending", "alice",
                               "system:masters")
    assert st == 404 and nf["message"] == 'pods "pending" not found'  # not running: not in the lister
    st, nf = await env.as_user("/apis/metrics.k8s.io/v1beta1/nodes/nope", "alice", "system:masters")
    assert st == 404 and nf["message"] == 'nodes "nope" not found'
    # a Table, as kubectl get asks
    st, table = await env.as_user("/apis/metrics.k8s.io/v1beta1/nodes", "alice", "system:masters",
                                  accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert st == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert table["rows"][0]["cells"][0] == NODE
    # no watch, no writes
    st, w = await env.as_user("/apis/metrics.k8s.io/v1beta1/nodes?watch=true", "alice", "system:masters")
    assert st == 405 and w["reason"] == "MethodNotAllowed"
    # storage ready: /readyz passes
    st, text = await env.get("/readyz")
    assert st == 200 and text == "ok"


async def test_authentication(env: Env) -> None:
    path = "/apis/metrics.k8s.io/v1beta1"
    # the front proxy with a user: the user is reviewed, with system:authenticated added
    env.reviews.clear()
    st, body = await env.as_user(path, "bob", "devs")
    assert st == 200 and body["kind"] == "APIResourceList"
    assert env.reviews[-1] == {"user": "bob", "groups": ["devs", "system:authenticated"],
                               "nonResourceAttributes": {"path": path, "verb": "get"}}
    # extra headers
    st, _ = await env.get("/apis/metrics.k8s.io/v1beta1/nodes", env.front_proxy,
                          {"X-Remote-User": "bob", "X-Remote-Extra-Scopes%2Fa": "x"})
    assert env.reviews[-1]["extra"] == {"scopes/a": ["x"]}
    assert env.reviews[-1]["resourceAttributes"] == {"verb": "list", "group": "metrics.k8s.io",
                                                     "version": "v1beta1", "resource": "nodes"}
    # a front-proxy certificate without a user header, or with a name not allowed: 401
    st, body = await env.get(path, env.front_proxy)
    assert st == 401 and body["reason"] == "Unauthorized"
    st, body = await env.get(path, env.other_client, {"X-Remote-User": "mallory"})
    assert st == 401
    # a client certificate of the cluster CA: its CN and organizations
    st, _ = await env.get(path, env.client_cert, {"X-Remote-User": "ignored"})
    assert st == 200 and env.reviews[-1]["user"] == "carol" and env.reviews[-1]["groups"] == ["team",
                                                                                               "system:authenticated"]
    # no credentials: anonymous, reviewed as such
    st, _ = await env.get(path)
    assert env.reviews[-1]["user"] == "system:anonymous"
    # health needs no review
    env.reviews.clear()
    st, text = await env.get("/livez")
    assert st == 200 and text == "ok" and not env.reviews


async def test_authorization_denied(env: Env) -> None:
    st, body = await env.as_user("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner", "dave")
    assert st == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods.metrics.k8s.io "burner" is forbidden: User "dave" cannot get resource "pods" in '
                               'API group "metrics.k8s.io" in the namespace "default": dave may not')
    assert body["details"] == {"name": "burner", "group": "metrics.k8s.io", "kind": "pods"}
    st, body = await env.as_user("/apis/metrics.k8s.io/v1beta1", "dave")
    assert st == 403 and body["message"] == ('forbidden: User "dave" cannot get path "/apis/metrics.k8s.io/v1beta1": '
                                             "dave may not")


async def test_discovery_documents_and_unknown_paths(env: Env) -> None:
    st, groups = await env.as_user("/apis", "alice", "system:masters")
    assert st == 200 and groups["kind"] == "APIGroupList" and groups["groups"][0]["name"] == "metrics.k8s.io"
    st, agg = await env.as_user("/apis", "alice", "system:masters",
                                accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    assert st == 200 and agg["kind"] == "APIGroupDiscoveryList"
    st, g = await env.as_user("/apis/metrics.k8s.io", "alice", "system:masters")
    assert g["kind"] == "APIGroup"
    st, nf = await env.as_user("/apis/metrics.k8s.io/v1beta1/deployments", "alice", "system:masters")
    assert st == 404 and nf["message"] == "the server could not find the requested resource"
    st, nf = await env.as_user("/apis/metrics.k8s.io/v1beta1/namespaces/default/nodes", "alice", "system:masters")
    assert st == 404
    st, _ = await env.as_user("/apis/metrics.k8s.io/v1beta1/nodes", "alice", "system:masters",
                              accept="application/vnd.kubernetes.protobuf")
    assert st == 406


def test_auth_config_from_configmap() -> None:
    cfg = AuthConfig.from_configmap({"data": {"requestheader-allowed-names": '["a","b"]',
                                              "requestheader-username-headers": "not json"}})
    assert cfg.allowed_names == ("a", "b") and cfg.username_headers == ()
    assert AuthConfig.from_configmap(None) == AuthConfig()
    assert UserInfo("x").groups == ()


async def test_bearer_tokens_are_reviewed(env: Env) -> None:
    c = env.cluster.client
    await c.create(("v1", "ServiceAccount"), {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": "reader"}}, "default")
    tr = await c.request("POST", "/api/v1/namespaces/default/serviceaccounts/reader/token",
                         body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
    token = tr["status"]["token"]
    env.reviews.clear()
    st, body = await env.get("/apis/metrics.k8s.io/v1beta1", headers={"Authorization": f"Bearer {token}"})
    assert st == 200 and body["kind"] == "APIResourceList"
    assert env.reviews[-1]["user"] == "system:serviceaccount:default:reader"
    assert "system:authenticated" in env.reviews[-1]["groups"]
    st, body = await env.get("/apis/metrics.k8s.io/v1beta1", headers={"Authorization": "Bearer not-a-token"})
    assert st == 401 and body["reason"] == "Unauthorized"


async def test_a_new_front_proxy_ca_is_trusted_once_published(env: Env, tmp_path: Path) -> None:
    c = env.cluster.client
    new = pki_mod.ensure_pki(ServerConfig(data_dir=str(tmp_path / "front2")))
    cert = _write(tmp_path, "proxy2", pki_mod.issue_client_certificate(new, "front-proxy-client"))
    # not yet published: the handshake fails (the certificate's CA is unknown)
    with pytest.raises(aiohttp.ClientError):
        await env.get("/apis/metrics.k8s.io/v1beta1", cert, {"X-Remote-User": "alice"})
    cm = await c.get(("v1", "ConfigMap"), "extension-apiserver-authentication", "kube-system")
    cm["data"]["requestheader-client-ca-file"] = Path(new.ca_cert).read_text()
    await c.update(("v1", "ConfigMap"), cm, "kube-system")
    await env.ms.refresh_auth_config()  # (its loop reads the ConfigMap every 10 s)
    st, _ = await env.get("/apis/metrics.k8s.io/v1beta1", cert, {"X-Remote-User": "alice"})
    assert st == 200 and env.reviews[-1]["user"] == "alice"
    # and the old front proxy's certificate is no longer believed
    with pytest.raises(aiohttp.ClientError):
        await env.get("/apis/metrics.k8s.io/v1beta1", env.front_proxy, {"X-Remote-User": "alice"})


async def test_openapi_v3(env: Env) -> None:
    st, index = await env.as_user("/openapi/v3", "alice", "system:masters")
    url = index["paths"]["apis/metrics.k8s.io/v1beta1"]["serverRelativeURL"]
    assert st == 200 and url.startswith("/openapi/v3/apis/metrics.k8s.io/v1beta1?hash=")
    st, doc = await env.as_user(url, "alice", "system:masters")
    assert st == 200 and doc["openapi"] == "3.0.0"
    schemas = doc["components"]["schemas"]
    nm = schemas["io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"]
    assert nm["x-kubernetes-group-version-kind"] == [{"group": "metrics.k8s.io", "kind": "NodeMetrics",
                                                      "version": "v1beta1"}]
    assert nm["required"] == ["timestamp", "window", "usage"]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas  # what the kinds refer to comes along
    op = doc["paths"]["/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}"]["get"]
    assert op["x-kubernetes-action"] == "get" and op["x-kubernetes-group-version-kind"]["kind"] == "PodMetrics"


async def test_one_registration_stands_with_two_servers(env: Env, tmp_path: Path) -> None:
    """Two metrics-servers (two k8py servers): the Lease holder's Service, slice and CA stand; when
    it stops, the other registers its own."""
    c = env.cluster.client

    async def slice_port() -> int:
        try:
            sl = await c.get(("discovery.k8s.io/v1", "EndpointSlice"), SLICE, "kube-system")
        except NotFoundError:
            return 0
        return int(sl["ports"][0]["port"])

    async def ca_bundle() -> bytes:
        a = await c.get(("apiregistration.k8s.io/v1", "APIService"), APISERVICE)
        return base64.b64decode(a["spec"]["caBundle"])

    await env.cluster.until(lambda: _is(slice_port(), env.ms.port), what="the first server's slice")
    second = MetricsServer(c, Options(listen_host="127.0.0.1", port=0, advertise="127.0.0.1",
                                      cert_dir=str(tmp_path / "second"), resolution=1.0, scrape_timeout=0.9),
                           kubelet_client(env.kubelet_ca, ClientConfig(server="https://unused")))
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(second.run(stop2))
    try:
        await env.cluster.until(lambda: second.files is not None and second.port, what="the second listening")
        lease = await c.get(("coordination.k8s.io/v1", "Lease"), "metrics-server-k8py", "kube-system")
        assert lease["spec"]["holderIdentity"] == env.ms.identity
        # the second campaigns (every 2 s) and does not take over while the first holds the lease
        deadline = asyncio.get_running_loop().time() + 3
        while asyncio.get_running_loop().time() < deadline:
            assert await slice_port() == env.ms.port
            await asyncio.sleep(0.2)
        assert second.files is not None
        # the first stops (releasing its lease): the second's registration replaces it
        env.stop.set()
        await asyncio.wait_for(env.task, 20)
        await env.cluster.until(lambda: _is(slice_port(), second.port), timeout=15, what="the second's slice")
        await env.cluster.until(lambda: _is(ca_bundle(), Path(second.files.ca_file).read_bytes()), timeout=15,
                                what="the second's CA as caBundle")
    finally:
        stop2.set()
        await asyncio.wait_for(task2, 20)


async def _is(value: Any, want: Any) -> bool:
    return bool(await value == want)
