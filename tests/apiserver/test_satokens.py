"""Service-account tokens through the API server in-process (the in-memory store, the real
authenticator and RBAC): TokenRequest, bound JWTs and their authentication, TokenReview, the
OIDC discovery documents, key rotation, and the pure JWT helpers (k8py.satoken)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from k8py import satoken
from k8py.apiserver import server as srv
from k8py.apiserver.authn import Authenticator, append_token
from k8py.apiserver.rbac import RBACAuthorizer
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

ISSUER = satoken.DEFAULT_ISSUER
NS = "default"


@pytest.fixture
def config(tmp_path: Any) -> ServerConfig:
    return ServerConfig(data_dir=str(tmp_path))


async def _client(config: ServerConfig) -> tuple[TestClient, Any, Any]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    authn = Authenticator(config)
    authz = RBACAuthorizer()
    cp = srv.build(config, store, authenticator=authn, authorizer=authz)
    await cp.bootstrap()
    task = await authz.start(cp)
    cp.http.ready = True
    c = TestClient(TestServer(cp.http.build()))
    await c.start_server()
    c.sa = cp.api.sa_tokens  # type: ignore[attr-defined]
    c.cp = cp  # type: ignore[attr-defined]
    return c, store, task


@pytest.fixture
async def api(config: ServerConfig) -> AsyncIterator[TestClient]:
    c, store, task = await _client(config)
    admin = append_token(config.token_file, "root", "0", ("system:masters",))
    c.admin = {"Authorization": f"Bearer {admin}"}  # type: ignore[attr-defined]
    c.config = config  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


def admin(api: TestClient) -> dict[str, str]:
    return api.admin  # type: ignore[attr-defined,no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make(api: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(path, json=body, headers=admin(api))
    assert r.status == 201, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def make_sa(api: TestClient, name: str = "robot", ns: str = NS) -> dict[str, Any]:
    return await make(api, f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": name}})


async def make_pod(api: TestClient, name: str, sa: str = "robot", node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceAccountName": sa, "automountServiceAccountToken": False,
                            "containers": [{"name": "c", "image": "busybox:1.36"}]}
    if node:
        spec["nodeName"] = node
    return await make(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": name}, "spec": spec})


async def request_token(api: TestClient, sa: str = "robot", status: int = 201, **spec: Any) -> dict[str, Any]:
    r = await api.post(f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token", headers=admin(api),
                       json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    assert r.status == status, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def whoami(api: TestClient, token: str) -> tuple[int, dict[str, Any]]:
    r = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=bearer(token),
                       json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return r.status, await r.json()


async def review(api: TestClient, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    body = await make(api, "/apis/authentication.k8s.io/v1/tokenreviews",
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
    return body["status"]  # type: ignore[no-any-return]


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- TokenRequest


def test_keys_load_and_tokens_are_checked_without_pyjwt(tmp_path: Any) -> None:
    # a server's start makes or loads its keys and checks tokens with this module's own code:
    # PyJWT, which only signing uses, is imported at the first token signed
    code = ("import sys; from k8py import satoken\n"
            "ring = satoken.load_keyring(sys.argv[1])\n"
            "before = 'jwt' in sys.modules\n"
            "token = satoken.sign({'iss': 'x', 'sub': 'y'}, ring)\n"
            "print(before, satoken.verify(satoken.parse(token), ring)['sub'], 'jwt' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sa.key")], capture_output=True, text=True,
                       check=True)
    assert r.stdout.splitlines()[-1] == "False y True", r.stdout


def test_a_server_start_makes_the_signing_key_and_checks_what_the_file_holds(tmp_path: Any) -> None:
    path = str(tmp_path / "cred" / "sa.key")
    satoken.make_signing_key(path)  # made on the first start: RSA 2048, readable by its owner only
    key = satoken.ensure_signing_key(path)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert os.stat(path).st_mode & 0o777 == 0o600
    satoken.make_signing_key(path)  # a restart keeps it
    assert satoken.key_id(satoken.ensure_signing_key(path).public_key()) == satoken.key_id(key.public_key())
    for content, message in ((b"not a key\n", "no private key found"),
                             (ed25519.Ed25519PrivateKey.generate().private_bytes(
                                 serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()), "unsupported key type Ed25519")):
        bad = tmp_path / "bad.key"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=message):  # the start fails on it, as kube-apiserver's
            satoken.make_signing_key(str(bad))


async def test_token_request_bound_claims_and_status(api: TestClient) -> None:
    sa = await make_sa(api)
    before = int(time.time())
    tr = await request_token(api)
    assert tr["kind"] == "TokenRequest" and tr["apiVersion"] == "authentication.k8s.io/v1"
    assert tr["spec"]["expirationSeconds"] == 3600 and tr["spec"]["audiences"] == [ISSUER]
    assert tr["metadata"]["name"] == "robot" and tr["metadata"]["namespace"] == NS
    assert tr["metadata"]["uid"] == sa["metadata"]["uid"] and tr["metadata"]["creationTimestamp"]
    c = claims_of(tr["status"]["token"])
    assert c["iss"] == ISSUER and c["aud"] == [ISSUER] and c["sub"] == "system:serviceaccount:default:robot"
    assert before <= c["iat"] == c["nbf"] and c["exp"] == c["iat"] + 3600 and c["jti"]
    assert c["kubernetes.io"] == {"namespace": NS, "serviceaccount": {"name": "robot", "uid": sa["metadata"]["uid"]}}
    exp = time.strptime(tr["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(exp) - time.mktime(time.gmtime(c["exp"]))) <= 1
    header = jwt.get_unverified_header(tr["status"]["token"])
    assert header == {"alg": "RS256", "kid": header["kid"]}


async def test_token_request_bad_input(api: TestClient) -> None:
    await make_sa(api)
    body = await request_token(api, status=422, expirationSeconds=60)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    assert "may not specify a duration less than 10 minutes" in body["message"]
    body = await request_token(api, status=422, expirationSeconds=(1 << 32) + 1)
    assert "larger than 2^32 seconds" in body["message"]
    r = await api.post(f"/api/v1/namespaces/{NS}/serviceaccounts/robot/token", headers=admin(api),
                       json={"metadata": {"name": "other"}, "spec": {}})
    assert r.status == 422
    assert (await r.json())["message"] == ('TokenRequest.authentication.k8s.io "robot" is invalid: metadata.name: '
                                           'Invalid value: "other": must match the service account name if '
                                           'specified')
    body = await request_token(api, "ghost", status=404)
    assert body["message"] == 'serviceaccounts "ghost" not found'
    body = await request_token(api, status=404, boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "nope"})
    assert body["message"] == 'pods "nope" not found'
    body = await request_token(api, status=400, boundObjectRef={"kind": "ConfigMap", "apiVersion": "v1", "name": "x"})
    assert body["message"] == "cannot bind token to object of type /v1, Kind=ConfigMap"
    await make_sa(api, "other")
    await make_pod(api, "p1", sa="other")
    body = await request_token(api, status=400, boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p1"})
    assert body["message"] == ('cannot bind token for serviceaccount "robot" to pod running with different '
                               'serviceaccount name.')
    body = await request_token(api, "other", status=409,
                               boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p1", "uid": "wrong"})
    assert body["reason"] == "Conflict" and "does not match the UID in record" in body["message"]


async def test_pod_bound_token_follows_the_pod(api: TestClient) -> None:
    sa = await make_sa(api)
    await make(api, "/api/v1/nodes", {"metadata": {"name": "n1"}})
    pod = await make_pod(api, "web", node="n1")
    tr = await request_token(api, boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "web"})
    token = tr["status"]["token"]
    k8s = claims_of(token)["kubernetes.io"]
    assert k8s["pod"] == {"name": "web", "uid": pod["metadata"]["uid"]}
    assert k8s["node"]["name"] == "n1" and k8s["node"]["uid"]
    status, body = await whoami(api, token)
    assert status == 201, body
    ui = body["status"]["userInfo"]
    assert ui["username"] == "system:serviceaccount:default:robot" and ui["uid"] == sa["metadata"]["uid"]
    assert ui["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
    assert ui["extra"]["authentication.kubernetes.io/pod-name"] == ["web"]
    assert ui["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert ui["extra"]["authentication.kubernetes.io/node-name"] == ["n1"]
    assert ui["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={claims_of(token)['jti']}"]
    # the pod deleted (at once) and made again under the same name: the token is dead
    r = await api.delete(f"/api/v1/namespaces/{NS}/pods/web?gracePeriodSeconds=0", headers=admin(api))
    assert r.status == 200
    assert (await whoami(api, token))[0] == 401
    await make_pod(api, "web", node="n1")
    assert (await whoami(api, token))[0] == 401
    st = await review(api, token)
    assert "authenticated" not in st and st["error"].startswith("[invalid bearer token, pod UID (")


async def test_deleted_service_account_kills_its_tokens(api: TestClient) -> None:
    await make_sa(api)
    token = (await request_token(api))["status"]["token"]
    assert (await whoami(api, token))[0] == 201
    r = await api.delete(f"/api/v1/namespaces/{NS}/serviceaccounts/robot", headers=admin(api))
    assert r.status == 200
    assert (await whoami(api, token))[0] == 401
    assert (await review(api, token))["error"] == '[invalid bearer token, serviceaccount "robot" not found]'


async def test_wrong_signature_expired_and_audiences(api: TestClient, config: ServerConfig) -> None:
    await make_sa(api)
    token = (await request_token(api, audiences=["vault"]))["status"]["token"]
    # for another audience: not the API's
    assert (await whoami(api, token))[0] == 401
    st = await review(api, token, ["vault"])
    assert st["authenticated"] is True and st["audiences"] == ["vault"]
    st = await review(api, token)
    assert st["error"] == (f'[invalid bearer token, token audiences ["vault"] is invalid for the target audiences '
                           f'["{ISSUER}"]]')
    # signed by a key the server does not know
    good = (await request_token(api))["status"]["token"]
    stranger = satoken.load_keyring(str(config.data_dir) + "/stranger.key")
    forged = satoken.sign(claims_of(good), stranger)
    assert (await whoami(api, forged))[0] == 401
    assert (await review(api, forged))["error"] == "[invalid bearer token, token signature is invalid]"
    # expired (past the 60 s leeway), with the server's own key
    keys = satoken.load_keyring(config.service_account_key_path)
    old = {**claims_of(good), "exp": int(time.time()) - 120}
    assert (await whoami(api, satoken.sign(old, keys)))[0] == 401
    assert (await review(api, satoken.sign(old, keys)))["error"] == "[invalid bearer token, service account token has expired]"
    # a JWT from another issuer is not ours: just unauthorized
    assert (await whoami(api, satoken.sign({**claims_of(good), "iss": "https://elsewhere"}, keys)))[0] == 401
    assert (await whoami(api, good))[0] == 201


async def test_max_expiration_and_kubelet_extension(tmp_path: Any) -> None:
    config = ServerConfig(data_dir=str(tmp_path), service_account_max_token_expiration=7200)
    c, store, task = await _client(config)
    try:
        c.admin = {"Authorization": "Bearer " + append_token(config.token_file, "root", "0",  # type: ignore[attr-defined]
                                                             ("system:masters",))}
        await make_sa(c)
        r = await c.post(f"/api/v1/namespaces/{NS}/serviceaccounts/robot/token", headers=admin(c),
                         json={"spec": {"expirationSeconds": 86400}})
        assert r.status == 201
        assert r.headers["Warning"] == '299 - "requested expiration of 86400 seconds shortened to 7200 seconds"'
        tr = await r.json()
        assert tr["spec"]["expirationSeconds"] == 7200
        cl = claims_of(tr["status"]["token"])
        assert cl["exp"] - cl["iat"] == 7200
        await make_pod(c, "p")
        tr = await request_token(c, expirationSeconds=3607, boundObjectRef={"kind": "Pod", "apiVersion": "v1",
                                                                             "name": "p"})
        cl = claims_of(tr["status"]["token"])
        assert cl["exp"] - cl["iat"] == satoken.EXPIRATION_EXTENSION_SECONDS
        assert cl["kubernetes.io"]["warnafter"] == cl["iat"] + 3607
        assert tr["spec"]["expirationSeconds"] == 3607  # what kubelet renews by
    finally:
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


# --------------------------------------------------------------------------- TokenReview


async def test_token_review_bad_input_and_static_tokens(api: TestClient, config: ServerConfig) -> None:
    r = await api.post("/apis/authentication.k8s.io/v1/tokenreviews", headers=admin(api),
                       json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}})
    assert r.status == 400
    assert (await r.json())["message"] == "token is required for TokenReview in authentication"
    alice = append_token(config.token_file, "alice", "u1", ("dev",))
    st = await review(api, alice)
    assert st["authenticated"] is True and st["user"]["username"] == "alice" and st["audiences"] == [ISSUER]
    assert (await review(api, alice, ["vault"])) == {"user": {}}
    assert (await review(api, "not-a-token")) == {"user": {}}


# --------------------------------------------------------------------------- OIDC discovery and keys


async def test_discovery_documents_and_rbac(api: TestClient) -> None:
    r = await api.get("/.well-known/openid-configuration", headers=admin(api))
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "public, max-age=3600"
    doc = await r.json()
    assert doc["issuer"] == ISSUER and doc["jwks_uri"].endswith("/openid/v1/jwks")
    assert doc["response_types_supported"] == ["id_token"] and doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    r = await api.get("/openid/v1/jwks", headers=admin(api))
    assert r.status == 200 and r.headers["Content-Type"] == "application/jwk-set+json"
    jwks = await r.json(content_type=None)
    (key,) = jwks["keys"]
    assert key["use"] == "sig" and key["kty"] == "RSA" and key["alg"] == "RS256" and key["e"] == "AQAB"
    # a service account may read them (system:service-account-issuer-discovery), anonymous may not
    await make_sa(api)
    token = (await request_token(api))["status"]["token"]
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    assert (await api.get("/openid/v1/jwks", headers=bearer(token))).status == 200
    assert (await api.get("/openid/v1/jwks")).status == 401
    # verified by PyJWT from the published key alone
    pub = jwt.PyJWK(key).key
    got = jwt.decode(token, pub, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)
    assert got["sub"] == "system:serviceaccount:default:robot"


async def test_rotation_keeps_old_tokens_valid(tmp_path: Any) -> None:
    old_cfg = ServerConfig(data_dir=str(tmp_path))
    c, store, task = await _client(old_cfg)
    try:
        c.admin = {"Authorization": "Bearer " + append_token(old_cfg.token_file, "root", "0",  # type: ignore[attr-defined]
                                                             ("system:masters",))}
        await make_sa(c)
        old_token = (await request_token(c))["status"]["token"]
    finally:
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # a new ECDSA signing key; the old key only verifies now (same store: the account is still there)
    new_key = tmp_path / "new.key"
    new_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    new_cfg = dataclasses.replace(old_cfg, service_account_signing_key_file=str(new_key),
                                  service_account_key_files=(old_cfg.service_account_key_path,))
    authn = Authenticator(new_cfg)
    authz = RBACAuthorizer()
    cp = srv.build(new_cfg, store, authenticator=authn, authorizer=authz)
    task = await authz.start(cp)
    cp.http.ready = True
    c = TestClient(TestServer(cp.http.build()))
    await c.start_server()
    c.admin = {"Authorization": "Bearer " + append_token(new_cfg.token_file, "root2", "0",  # type: ignore[attr-defined]
                                                         ("system:masters",))}
    try:
        new_token = (await request_token(c))["status"]["token"]
        assert jwt.get_unverified_header(new_token)["alg"] == "ES256"
        assert (await whoami(c, new_token))[0] == 201
        assert (await whoami(c, old_token))[0] == 201
        jwks = await (await c.get("/openid/v1/jwks", headers=admin(c))).json(content_type=None)
        assert [k["kty"] for k in jwks["keys"]] == ["EC", "RSA"]
        doc = await (await c.get("/.well-known/openid-configuration", headers=admin(c))).json()
        assert doc["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    finally:
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


# --------------------------------------------------------------------------- legacy token Secrets


async def test_legacy_token_secret_authenticates(api: TestClient, config: ServerConfig) -> None:
    sa = await make_sa(api)
    secret = await make(api, f"/api/v1/namespaces/{NS}/secrets", {
        "metadata": {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}},
        "type": "kubernetes.io/service-account-token"})
    keys = satoken.load_keyring(config.service_account_key_path)
    token = satoken.sign(satoken.legacy_claims(sa, secret), keys)
    # not in the Secret yet (the tokens controller fills it): refused
    assert (await whoami(api, token))[0] == 401
    assert (await review(api, token))["error"] == "[invalid bearer token, token does not match server's copy]"
    secret["data"] = {"token": base64.b64encode(token.encode()).decode()}
    r = await api.put(f"/api/v1/namespaces/{NS}/secrets/robot-token", json=secret, headers=admin(api))
    assert r.status == 200, await r.text()
    status, body = await whoami(api, token)
    assert status == 201 and body["status"]["userInfo"]["username"] == "system:serviceaccount:default:robot"
    assert claims_of(token)["iss"] == "kubernetes/serviceaccount"
    # kube's tracking: the day of the last use, and a Secret marked invalid refuses its token
    r = await api.get(f"/api/v1/namespaces/{NS}/secrets/robot-token", headers=admin(api))
    stored = await r.json()
    assert stored["metadata"]["labels"]["kubernetes.io/legacy-token-last-used"] == time.strftime("%Y-%m-%d",
                                                                                                  time.gmtime())
    stored["metadata"]["labels"]["kubernetes.io/legacy-token-invalid-since"] = "2026-01-01"
    r = await api.put(f"/api/v1/namespaces/{NS}/secrets/robot-token", json=stored, headers=admin(api))
    assert r.status == 200, await r.text()
    assert (await whoami(api, token))[0] == 401
    assert "has been marked invalid" in (await review(api, token))["error"]
    await api.delete(f"/api/v1/namespaces/{NS}/secrets/robot-token", headers=admin(api))
    assert (await whoami(api, token))[0] == 401


# --------------------------------------------------------------------------- pure helpers


def test_key_id_and_username_helpers(tmp_path: Any) -> None:
    keys = satoken.load_keyring(str(tmp_path / "k.pem"))
    assert keys.signing is not None and (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    der = keys.signing.public.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib

    assert keys.signing.kid == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    # the same file again: the same key (made once)
    assert satoken.load_keyring(str(tmp_path / "k.pem")).signing == keys.signing
    assert satoken.split_username("system:serviceaccount:ns:robot") == ("ns", "robot")
    assert satoken.split_username("system:serviceaccount:ns") is None
    assert satoken.split_username("alice") is None
    with pytest.raises(ValueError, match="no public keys"):
        (tmp_path / "empty.pem").write_text("nothing here\n")
        satoken.load_public_keys(str(tmp_path / "empty.pem"))


# --------------------------------------------------------------------------- ServiceAccount admission


async def test_admission_mounts_the_token_volume(api: TestClient) -> None:
    await make_sa(api)
    pod = await make(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "p"}, "spec": {
        "serviceAccountName": "robot",
        "initContainers": [{"name": "init", "image": "busybox:1.36"}],
        "containers": [{"name": "a", "image": "busybox:1.36"},
                       {"name": "b", "image": "busybox:1.36", "volumeMounts": [
                           {"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
        "volumes": [{"name": "own", "emptyDir": {}}]}})
    spec = pod["spec"]
    (vol,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    mount = {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [
        {"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]  # its own mount wins


async def test_admission_automount_opt_out_and_missing_account(api: TestClient) -> None:
    await make(api, f"/api/v1/namespaces/{NS}/serviceaccounts",
               {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False,
                "imagePullSecrets": [{"name": "regcred"}]})
    pod = await make(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "q"}, "spec": {
        "serviceAccountName": "quiet", "containers": [{"name": "a", "image": "busybox:1.36"}]}})
    assert "volumes" not in pod["spec"] and "volumeMounts" not in pod["spec"]["containers"][0]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    # the pod's own setting wins over the account's
    pod = await make(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "q2"}, "spec": {
        "serviceAccountName": "quiet", "automountServiceAccountToken": True,
        "containers": [{"name": "a", "image": "busybox:1.36"}]}})
    assert [v["name"][:16] for v in pod["spec"]["volumes"]] == ["kube-api-access-"]
    r = await api.post(f"/api/v1/namespaces/{NS}/pods", headers=admin(api), json={
        "metadata": {"name": "lost"}, "spec": {"serviceAccountName": "ghost",
                                               "containers": [{"name": "a", "image": "busybox:1.36"}]}})
    assert r.status == 403
    assert (await r.json())["message"] == ('pods "lost" is forbidden: error looking up service account '
                                           'default/ghost: serviceaccount "ghost" not found')


async def test_admission_without_the_default_account_yet(api: TestClient) -> None:
    # no controller manager here: the namespace's default account was never made
    pod = await make(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "early"}, "spec": {
        "containers": [{"name": "a", "image": "busybox:1.36"}]}})
    assert pod["spec"]["serviceAccountName"] == "default" and "volumes" not in pod["spec"]
    await make_sa(api, "default")
    pod = await make(api, f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "later"}, "spec": {
        "containers": [{"name": "a", "image": "busybox:1.36"}]}})
    assert [v["name"][:16] for v in pod["spec"]["volumes"]] == ["kube-api-access-"]


def test_parse_and_verify_refuse_tampering(tmp_path: Any) -> None:
    for key_file, gen in (("rsa.pem", None), ("ec.pem", ec.SECP384R1())):
        path = tmp_path / key_file
        if gen is not None:
            path.write_bytes(ec.generate_private_key(gen).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        keys = satoken.load_keyring(str(path))
        token = satoken.sign({"sub": "system:serviceaccount:a:b", "n": 1}, keys)
        parsed = satoken.parse(token)
        assert parsed is not None and satoken.verify(parsed, keys) == {"sub": "system:serviceaccount:a:b", "n": 1}
        # checked independently: PyJWT accepts what we sign
        assert keys.signing is not None
        assert jwt.decode(token, keys.signing.public, algorithms=[keys.signing.alg])["n"] == 1
        head, _, sig = token.split(".")
        other = base64.urlsafe_b64encode(b'{"sub":"system:serviceaccount:a:b","n":2}').rstrip(b"=").decode()
        tampered = satoken.parse(f"{head}.{other}.{sig}")
        assert tampered is not None
        with pytest.raises(satoken.TokenError, match="token signature is invalid"):
            satoken.verify(tampered, keys)
    for junk in ("", "a.b", "a.b.c", "eyJ!.eyJ.x", "W10.W10.AA"):  # W10 is "[]": not an object
        assert satoken.parse(junk) is None


async def test_node_bound_token_lives_with_its_node(api: TestClient) -> None:
    await make_sa(api)
    node = await make(api, "/api/v1/nodes", {"metadata": {"name": "n2"}})
    tr = await request_token(api, boundObjectRef={"kind": "Node", "apiVersion": "v1", "name": "n2"})
    token = tr["status"]["token"]
    assert claims_of(token)["kubernetes.io"]["node"] == {"name": "n2", "uid": node["metadata"]["uid"]}
    status, body = await whoami(api, token)
    assert status == 201
    extra = body["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/node-name"] == ["n2"]
    assert extra["authentication.kubernetes.io/node-uid"] == [node["metadata"]["uid"]]
    assert (await api.delete("/api/v1/nodes/n2", headers=admin(api))).status == 200
    assert (await whoami(api, token))[0] == 401
    assert (await review(api, token))["error"] == "[invalid bearer token, service account token has been invalidated]"


async def test_audit_annotations_for_stale_and_legacy_tokens(api: TestClient, config: ServerConfig) -> None:
    sa = await make_sa(api)
    await make_pod(api, "p")
    tr = await request_token(api, expirationSeconds=3607, boundObjectRef={"kind": "Pod", "apiVersion": "v1",
                                                                          "name": "p"})
    sat = api.sa  # type: ignore[attr-defined]
    got = await sat.authenticate(tr["status"]["token"])
    assert got is not None and got.audit_annotations == {}
    keys = satoken.load_keyring(config.service_account_key_path)
    stale = claims_of(tr["status"]["token"])
    stale["kubernetes.io"]["warnafter"] = int(time.time()) - 100
    got = await sat.authenticate(satoken.sign(stale, keys))
    assert got is not None
    note = got.audit_annotations["authentication.k8s.io/stale-token"]
    assert note.startswith("subject: system:serviceaccount:default:robot, seconds after warning threshold: 10")
    secret = await make(api, f"/api/v1/namespaces/{NS}/secrets", {
        "metadata": {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}},
        "type": "kubernetes.io/service-account-token"})
    legacy = satoken.sign(satoken.legacy_claims(sa, secret), keys)
    secret["data"] = {"token": base64.b64encode(legacy.encode()).decode()}
    assert (await api.put(f"/api/v1/namespaces/{NS}/secrets/robot-token", json=secret, headers=admin(api))).status == 200
    got = await sat.authenticate(legacy)
    assert got is not None
    assert got.audit_annotations == {"authentication.k8s.io/legacy-token": "system:serviceaccount:default:robot"}


async def test_the_audit_event_carries_the_token_annotations(tmp_path: Any) -> None:
    import json

    from k8py.apiserver.audit import AuditLog, BufferedWriter, RotatingWriter, load_policy

    config = ServerConfig(data_dir=str(tmp_path))
    c, store, task = await _client(config)
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    http = c.cp.http  # type: ignore[attr-defined]
    http.audit = AuditLog(load_policy(str(policy)), BufferedWriter(RotatingWriter(str(tmp_path / "audit.log"))))
    http.audit.start()
    try:
        c.admin = {"Authorization": "Bearer " + append_token(config.token_file, "root", "0",  # type: ignore[attr-defined]
                                                             ("system:masters",))}
        sa = await make_sa(c)
        secret = await make(c, f"/api/v1/namespaces/{NS}/secrets", {
            "metadata": {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}},
            "type": "kubernetes.io/service-account-token"})
        legacy = satoken.sign(satoken.legacy_claims(sa, secret), satoken.load_keyring(config.service_account_key_path))
        secret["data"] = {"token": base64.b64encode(legacy.encode()).decode()}
        assert (await c.put(f"/api/v1/namespaces/{NS}/secrets/robot-token", json=secret, headers=admin(c))).status == 200
        assert (await c.get(f"/api/v1/namespaces/{NS}/configmaps", headers=bearer(legacy))).status == 403
    finally:
        await http.audit.close()
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    evs = [json.loads(x) for x in (tmp_path / "audit.log").read_text().splitlines()]
    mine = [e for e in evs if e["user"]["username"] == "system:serviceaccount:default:robot"]
    assert mine and all(e["annotations"]["authentication.k8s.io/legacy-token"] ==
                        "system:serviceaccount:default:robot" for e in mine)
