"""The node agent's TLS bootstrap against an API server in this process (TLS, client certificates,
bootstrap tokens from the store, the CSR controllers): a join token becomes a client certificate
of system:node:<name>; a wrong token, a wrong CA hash and a denied request are clear errors;
credentials already on disk are used again without a new request."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8py.apiserver import server as srv
from k8py.apiserver.authn import Authenticator
from k8py.apiserver.rbac.node import node_and_rbac
from k8py.apiserver.registry.base import Strategy
from k8py.cli.token import bootstrap_token_secret, join_token, new_bootstrap_token
from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.config import ServerConfig
from k8py.controllers.manager import ControllerManager
from k8py.kubelet import bootstrap as bs
from k8py.pki import PKI, ensure_pki, server_ssl_context
from k8py.storage.memory import MemoryStore

CSR = ("certificates.k8s.io/v1", "CertificateSigningRequest")
HOOKS = hasattr(Strategy, "prepare_for_create_by") and hasattr(Strategy, "prepare_for_subresource_update")
needs_hooks = pytest.mark.skipif(not HOOKS, reason="rest.py does not yet pass the requesting user to the CSR "
                                                   "strategy nor serve /approval (see the CSR report)")


def test_join_token_parsing() -> None:
    t = bs.parse_join_token("K10" + "ab" * 32 + "::abcdef.0123456789abcdef\n")
    assert (t.ca_hash, t.token_id, t.token_secret) == ("ab" * 32, "abcdef", "0123456789abcdef")
    assert t.bearer == "abcdef.0123456789abcdef"
    for bad in ("abcdef.0123456789abcdef", "K10" + "ab" * 31 + "::abcdef.0123456789abcdef",
                "K10" + "ab" * 32 + "::ABCDEF.0123456789abcdef", "K10" + "ab" * 32 + "::server:password"):
        with pytest.raises(bs.BootstrapError, match="not of the form K10<ca-sha256>::<id>.<secret>"):
            bs.parse_join_token(bad)


@dataclass
class Plane:
    url: str
    pki: PKI
    admin: Client
    ca_pem: bytes

    async def join_token(self, ttl: dt.timedelta = dt.timedelta(hours=1)) -> str:
        token_id, secret = new_bootstrap_token()
        await self.admin.create(("v1", "Secret"), bootstrap_token_secret(token_id, secret, ttl), "kube-system")
        return join_token(self.ca_pem, token_id, secret)


ALL_CONTROLLERS = ["root-ca-cert-publisher", "csrsigning", "csrapproving"]


@pytest.fixture
async def plane(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Plane]:
    controllers = getattr(request, "param", ALL_CONTROLLERS)
    config = ServerConfig(data_dir=str(tmp_path / "server"), https_listen_port=srv.free_port(),
                          bind_address="127.0.0.1")
    pki = ensure_pki(config)
    authn = Authenticator(config, pki)
    cp = await srv.start(config, store=MemoryStore(progress_interval=0.1), ssl_context=server_ssl_context(pki),
                         authenticator=authn, authorizer=node_and_rbac())
    cp.tasks = [*(cp.tasks or []), authn.watch_bootstrap_tokens(cp.objects, cp.registry)]
    url = f"https://127.0.0.1:{config.https_listen_port}"

    def admin_client(component: str) -> Client:
        return Client(ClientConfig(server=url, ca_file=pki.ca_cert, cert_file=pki.admin_cert,
                                   key_file=pki.admin_key), component=component)

    manager_client = admin_client("controller-manager")
    mgr = ControllerManager(manager_client, controllers=controllers, leader_elect=False,
                            options={"root_ca_file": pki.ca_cert, "cluster_signing_cert_file": pki.ca_cert,
                                     "cluster_signing_key_file": pki.ca_key})
    stop = asyncio.Event()
    task = asyncio.create_task(mgr.run(stop))
    admin = admin_client("test")
    try:
        await asyncio.wait_for(mgr.ready.wait(), 30)
        yield Plane(url, pki, admin, Path(pki.ca_cert).read_bytes())
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await manager_client.close()
        await admin.close()
        await srv.stop(cp)


def _cert(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@needs_hooks
async def test_join_token_becomes_a_node_client_certificate(plane: Plane, tmp_path: Path) -> None:
    token = await plane.join_token()
    cert_dir = str(tmp_path / "agent")
    cert_file, key_file, ca_file = await bs.bootstrap(plane.url, token, "node-2", cert_dir, timeout=30)
    assert Path(ca_file).read_bytes() == plane.ca_pem
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    cert = _cert(cert_file)
    cert.verify_directly_issued_by(_cert(ca_file))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-2"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]

    # the request is on record: requested by the bootstrap user, auto-approved, issued
    (csr,) = (await plane.admin.list(CSR))["items"]
    token_id = token.split("::")[1].split(".")[0]
    assert csr["spec"]["username"] == f"system:bootstrap:{token_id}"
    assert "system:bootstrappers" in csr["spec"]["groups"]
    approved = next(c for c in csr["status"]["conditions"] if c["type"] == "Approved")
    assert (approved["reason"], approved["message"]) == (
        "AutoApproved", "Auto approving kubelet client certificate after SubjectAccessReview.")

    # the new credentials work: the server knows us as the node
    async with Client(ClientConfig(server=plane.url, ca_file=ca_file, cert_file=cert_file, key_file=key_file),
                      component="node-2") as node:
        review = await node.create(("authentication.k8s.io/v1", "SelfSubjectReview"),
                                   {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    info = review["status"]["userInfo"]
    assert info["username"] == "system:node:node-2" and "system:nodes" in info["groups"]

    # a second start finds them and asks nothing
    again = await bs.bootstrap(plane.url, token, "node-2", cert_dir, timeout=30)
    assert again == (cert_file, key_file, ca_file)
    assert len((await plane.admin.list(CSR))["items"]) == 1


async def test_wrong_token_is_refused_by_the_server(plane: Plane, tmp_path: Path) -> None:
    token = await plane.join_token()
    wrong = token[:-16] + "0" * 16
    with pytest.raises(bs.BootstrapError, match=r"refused the join token \(401 Unauthorized\)"):
        await bs.bootstrap(plane.url, wrong, "node-2", str(tmp_path / "agent"), timeout=10)
    expired = await plane.join_token(ttl=dt.timedelta(seconds=-1))
    with pytest.raises(bs.BootstrapError, match="401 Unauthorized"):
        await bs.bootstrap(plane.url, expired, "node-2", str(tmp_path / "agent"), timeout=10)
    assert not (tmp_path / "agent").exists()


async def test_ca_hash_mismatch_is_named(plane: Plane, tmp_path: Path) -> None:
    token = await plane.join_token()
    pinned = "0" * 64
    bad = "K10" + pinned + token[67:]
    with pytest.raises(bs.BootstrapError, match=f"CA hash mismatch: .* but the join token pins {pinned}"):
        await bs.bootstrap(plane.url, bad, "node-2", str(tmp_path / "agent"), timeout=10)
    assert (await plane.admin.list(CSR))["items"] == []  # nothing was asked of an untrusted server


@needs_hooks
@pytest.mark.parametrize("plane", [["root-ca-cert-publisher", "csrsigning"]], indirect=True)  # no approver
async def test_a_denied_request_is_an_error(plane: Plane, tmp_path: Path) -> None:
    token = await plane.join_token()

    async def deny() -> None:
        while True:
            items = (await plane.admin.list(CSR))["items"]
            if items:
                csr = items[0]
                csr["status"] = {"conditions": [{"type": "Denied", "status": "True", "reason": "NotThisOne",
                                                 "message": "denied by a test"}]}
                await plane.admin.update(CSR, csr, subresource="approval")
                return
            await asyncio.sleep(0.02)

    denier = asyncio.create_task(deny())
    try:
        with pytest.raises(bs.BootstrapError, match=r"was not signed \(Denied: NotThisOne denied by a test\)"):
            await bs.bootstrap(plane.url, token, "node-3", str(tmp_path / "agent"), timeout=20)
    finally:
        await asyncio.wait_for(denier, 10)
    assert not (tmp_path / "agent" / "client.key").exists()


def _self_signed(cn: str, days: float, key: ec.EllipticCurvePrivateKey, ca: tuple[x509.Certificate, Any]) -> bytes:
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca[0].subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .sign(ca[1], hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_existing_credentials_are_checked(tmp_path: Path) -> None:
    pki = ensure_pki(ServerConfig(data_dir=str(tmp_path / "server")))
    ca_pem = Path(pki.ca_cert).read_bytes()
    ca = (x509.load_pem_x509_certificate(ca_pem),
          serialization.load_pem_private_key(Path(pki.ca_key).read_bytes(), password=None))
    d = tmp_path / "agent"
    d.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (d / "ca.crt").write_bytes(ca_pem)
    pinned = bs.ca_hash(ca_pem)

    (d / "client.crt").write_bytes(_self_signed("system:node:n1", 300, key, ca))
    assert bs.existing_credentials(str(d), "n1", pinned) == (str(d / "client.crt"), str(d / "client.key"),
                                                             str(d / "ca.crt"))
    assert bs.existing_credentials(str(d), "n2", pinned) is None  # another node's
    assert bs.existing_credentials(str(d), "n1", "0" * 64) is None  # another cluster's CA
    (d / "client.crt").write_bytes(_self_signed("system:node:n1", 0.1, key, ca))
    assert bs.existing_credentials(str(d), "n1", pinned) is None  # in the last fifth of its life
    other = ec.generate_private_key(ec.SECP256R1())
    (d / "client.crt").write_bytes(_self_signed("system:node:n1", 300, other, ca))
    assert bs.existing_credentials(str(d), "n1", pinned) is None  # not for our key
    (d / "client.crt").write_bytes(base64.b64encode(b"junk"))
    assert bs.existing_credentials(str(d), "n1", pinned) is None


def _token_secret(data: dict[str, str], name: str = "bootstrap-token-abcdef", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": name, "namespace": "kube-system", **extra},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_bootstrap_token_secrets_as_the_api_server_reads_them() -> None:
    from k8py.apiserver.authn import BootstrapTokens

    good = {"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true",
            "auth-extra-groups": "system:bootstrappers:k8py:default-node-token",
            "expiration": "2030-01-01T00:00:00Z"}
    tokens = BootstrapTokens()
    tokens.put("/k/good", _token_secret(good))
    user = tokens.lookup("abcdef.0123456789abcdef", now=dt.datetime(2029, 1, 1, tzinfo=dt.UTC))
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:k8py:default-node-token",
                           "system:authenticated")
    assert tokens.lookup("abcdef.0123456789abcdeX") is None  # wrong secret
    assert tokens.lookup("abcdef.0123456789abcdef", now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) is None  # expired
    tokens.remove("/k/good")
    assert tokens.lookup("abcdef.0123456789abcdef") is None

    refused = [
        _token_secret({**good, "usage-bootstrap-authentication": "false"}),  # not for authentication
        _token_secret({**good, "auth-extra-groups": "system:masters"}),  # groups outside system:bootstrappers:
        _token_secret(good, name="bootstrap-token-zzzzzz"),  # name and token-id disagree
        _token_secret(good, deletionTimestamp="2024-01-01T00:00:00Z"),  # being deleted
        {**_token_secret(good), "type": "Opaque"},
    ]
    for i, secret in enumerate(refused):
        tokens.put(f"/k/{i}", secret)
        assert tokens.lookup("abcdef.0123456789abcdef", now=dt.datetime(2029, 1, 1, tzinfo=dt.UTC)) is None, i


@needs_hooks
async def test_a_node_rotates_its_client_and_serving_certificates_through_csrs(plane: Plane, tmp_path: Path) -> None:
    token = await plane.join_token()
    cert_dir = str(tmp_path / "agent")
    first = await bs.node_credentials(plane.url, token, "node-3", cert_dir, ["127.0.0.1"], ["node-3"])
    old_client, old_serving = _cert(str(first["cert"])), _cert(str(first["serving_cert"]))
    lifetimes = first["lifetimes"]
    assert isinstance(lifetimes, dict)
    assert lifetimes["client"] == [old_client.not_valid_before_utc.timestamp(),
                                   old_client.not_valid_after_utc.timestamp()]

    # the token is gone (bootstrap tokens expire): the rotation uses the node's own certificate
    for s in (await plane.admin.list(("v1", "Secret"), "kube-system"))["items"]:
        if s.get("type") == "bootstrap.kubernetes.io/token":
            await plane.admin.delete(("v1", "Secret"), s["metadata"]["name"], "kube-system")
    again = await bs.node_credentials(plane.url, "", "node-3", cert_dir, ["127.0.0.1"], ["node-3"],
                                    rotate=("client", "serving"))
    assert (again["cert"], again["key"], again["serving_cert"]) == (first["cert"], first["key"], first["serving_cert"])
    new_client, new_serving = _cert(str(again["cert"])), _cert(str(again["serving_cert"]))
    assert new_client.serial_number != old_client.serial_number
    assert new_client.subject == old_client.subject and new_client.public_key() != old_client.public_key()
    assert new_serving.serial_number != old_serving.serial_number
    new_client.verify_directly_issued_by(_cert(str(again["ca"])))

    # asked by the node itself and approved as kube's selfnodeclient
    csrs = (await plane.admin.list(CSR))["items"]
    mine = [c for c in csrs if c["spec"]["username"] == "system:node:node-3"
            and c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"]
    assert len(mine) == 1
    approved = next(c for c in mine[0]["status"]["conditions"] if c["type"] == "Approved")
    assert approved["message"] == "Auto approving self kubelet client certificate after SubjectAccessReview."

    # a live client loads the new certificate: new connections are the node, with the new one
    async with Client(ClientConfig(server=plane.url, ca_file=str(again["ca"]), cert_file=str(again["cert"]),
                                   key_file=str(again["key"])), component="node-3") as node:
        await node.list(("v1", "Node"))
        third = await bs.node_credentials(plane.url, "", "node-3", cert_dir, ["127.0.0.1"], ["node-3"],
                                          rotate=("client",))
        assert third["serving_cert"] == again["serving_cert"]
        assert _cert(str(third["serving_cert"])).serial_number == new_serving.serial_number  # only the client one
        node.reload_client_certificate()
        await node.close()  # new connections only
        review = await node.create(("authentication.k8s.io/v1", "SelfSubjectReview"),
                                   {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == "system:node:node-3"
    assert _cert(str(third["cert"])).serial_number != new_client.serial_number


@needs_hooks
async def test_a_start_with_a_certificate_due_for_renewal_renews_it_without_the_token(plane: Plane,
                                                                                     tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = serialization.load_pem_private_key(Path(plane.pki.ca_key).read_bytes(), password=None)
    ca = _cert(plane.pki.ca_cert)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    old = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "system:node:node-4")]))
           .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(seconds=100)).not_valid_after(now + dt.timedelta(seconds=15))
           .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    cert_dir = tmp_path / "agent"
    cert_dir.mkdir()
    (cert_dir / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    (cert_dir / "client.crt").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (cert_dir / "ca.crt").write_bytes(plane.ca_pem)
    # a token of this cluster that the server does not know (long expired and deleted)
    unknown = f"K10{bs.ca_hash(plane.ca_pem)}::abcdef.0123456789abcdef"
    cert_file, _, _ = await bs.bootstrap(plane.url, unknown, "node-4", str(cert_dir), timeout=30)
    new = _cert(cert_file)
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc - now > dt.timedelta(days=300)
    (csr,) = [c for c in (await plane.admin.list(CSR))["items"] if c["spec"]["username"] == "system:node:node-4"]
    assert csr["status"].get("certificate")
