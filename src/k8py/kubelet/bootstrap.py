"""The node agent's TLS bootstrap: from a join token to a client certificate of its own, as
kubelet's ``--bootstrap-kubeconfig`` flow does under k3s and kubeadm.

    cert_file, key_file, ca_file = await bootstrap("https://10.0.0.1:6443", token, "node-2", "/var/lib/k8py/agent")

1. The token is k3s's secure form ``K10<sha256 of the CA bundle>::<id>.<secret>`` (made by
   ``k8py token create --join``); ``<id>.<secret>`` is a kube bootstrap token.
2. The cluster CA is fetched from the server, from the ``kube-public/kube-root-ca.crt``
   ConfigMap (what the root CA publisher keeps there), authenticated with the bootstrap token and
   without verifying the server yet: nothing else is trusted until the CA's SHA-256 equals the
   hash in the token. A mismatch is an error naming both hashes. (k3s serves ``/cacerts`` without
   credentials for this step; k8py has no such endpoint yet, so the bootstrap token travels over
   this one unverified connection. What it reads is checked against the pinned hash before use,
   and every later request verifies the server with the pinned CA.)
3. A new EC P-256 key and a CSR (``CN=system:node:<name>, O=system:nodes``, signer
   ``kubernetes.io/kube-apiserver-client-kubelet``, usages ``digital signature`` and ``client
   auth``) are made, and the CertificateSigningRequest is created as the bootstrap user; the
   CSR approver approves it, the signer signs it; we watch it until the certificate is there
   (or it is Denied or Failed: an error saying so).
4. The certificate (checked: issued by the pinned CA, for our key), the key (mode 0600) and the CA
   are written to ``cert_dir`` and their paths returned.

If ``cert_dir`` already holds a client certificate for this node, issued by the CA the token pins,
with its key, and not in the last fifth of its lifetime, it is returned as it is, with no request.

Only :mod:`k8py.client` talks to the server (the one rule of the architecture).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8py.client.api import Client
from k8py.client.config import ClientConfig
from k8py.client.errors import AlreadyExistsError, ApiError, NotFoundError, UnauthorizedError
from k8py.tlsfiles import read_if_present, write_private_file

__all__ = ["BootstrapError", "JoinToken", "bootstrap", "parse_join_token"]

log = logging.getLogger(__name__)

CSR = ("certificates.k8s.io/v1", "CertificateSigningRequest")
CONFIG_MAP = ("v1", "ConfigMap")
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
USAGES = ["digital signature", "client auth"]
CA_CONFIG_MAP = ("kube-public", "kube-root-ca.crt")
CERT_NAME, KEY_NAME, CA_NAME = "client.crt", "client.key", "ca.crt"
# Renew when less than this part of the certificate's lifetime is left (kubelet rotates at 70-90%).
RENEW_FRACTION = 0.2
_K10 = re.compile(r"^K10([0-9a-f]{64})::([a-z0-9]{6})\.([a-z0-9]{16})$")


class BootstrapError(Exception):
    """The bootstrap cannot go on; the message says why and what to check."""


@dataclass(frozen=True, slots=True)
class JoinToken:
    ca_hash: str  # hex SHA-256 of the CA bundle
    token_id: str
    token_secret: str

    @property
    def bearer(self) -> str:
        return f"{self.token_id}.{self.token_secret}"


def parse_join_token(token: str) -> JoinToken:
    """``K10<64 hex>::<6 [a-z0-9]>.<16 [a-z0-9]>``; anything else is a :class:`BootstrapError`."""
    m = _K10.match(token.strip())
    if m is None:
        raise BootstrapError("the join token is not of the form K10<ca-sha256>::<id>.<secret> (as 'k8py token "
                             "create --join' prints it)")
    return JoinToken(m.group(1), m.group(2), m.group(3))


def ca_hash(pem: bytes) -> str:
    return hashlib.sha256(pem).hexdigest()


def node_user(node_name: str) -> str:
    return f"system:node:{node_name}"


# --------------------------------------------------------------------------- files


def _spki(key: object) -> bytes:
    """The DER SubjectPublicKeyInfo of any public key (b"" for something that is not one)."""
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    return bytes(public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def existing_credentials(cert_dir: str, node_name: str, pinned_hash: str,
                         now: dt.datetime | None = None, renew_fraction: float = RENEW_FRACTION,
                         ) -> tuple[str, str, str] | None:
    """The paths of usable credentials already in ``cert_dir``, else None (with the reason logged):
    not in the last ``renew_fraction`` of their life (0: not expired)."""
    paths = (os.path.join(cert_dir, CERT_NAME), os.path.join(cert_dir, KEY_NAME), os.path.join(cert_dir, CA_NAME))
    cert_pem, key_pem, ca_pem = (read_if_present(p) for p in paths)
    if cert_pem is None or key_pem is None or ca_pem is None:
        return None
    if not hmac.compare_digest(ca_hash(ca_pem), pinned_hash):
        log.info("bootstrap: %s is not the CA the join token pins; requesting a new certificate", paths[2])
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        log.info("bootstrap: the credentials in %s are not usable (%s); requesting a new certificate", cert_dir, e)
        return None
    if not _spki(cert.public_key()) or _spki(cert.public_key()) != _spki(key.public_key()):
        log.info("bootstrap: %s does not match %s; requesting a new certificate", paths[0], paths[1])
        return None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != node_user(node_name):
        log.info("bootstrap: %s is not a certificate of node %s; requesting a new one", paths[0], node_name)
        return None
    now = now or dt.datetime.now(dt.UTC)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    if cert.not_valid_after_utc - now <= lifetime * renew_fraction:
        log.info("bootstrap: %s expires at %s; requesting a new certificate", paths[0], cert.not_valid_after_utc)
        return None
    return paths


# --------------------------------------------------------------------------- the request


def new_key_and_csr(node_name: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, node_user(node_name))])
    req = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return key, req.public_bytes(serialization.Encoding.PEM)


def csr_name(public_key: ec.EllipticCurvePublicKey, node_name: str) -> str:
    """kubelet's ``digestedName``: the same key and subject always ask under the same name."""
    h = hashlib.sha256(_spki(public_key))
    for part in (node_user(node_name), "system:nodes", *USAGES):
        h.update(b"|" + part.encode())
    return "node-csr-" + base64.urlsafe_b64encode(h.digest()).decode().rstrip("=")


async def fetch_ca(server_url: str, token: JoinToken, timeout: float) -> bytes:
    """The CA from ``kube-public/kube-root-ca.crt``, verified against the pinned hash."""
    cfg = ClientConfig(server=server_url, token=token.bearer, insecure_skip_tls_verify=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with Client(cfg, component="kubelet-bootstrap", timeout=min(timeout, 30.0)) as client:
        while True:
            try:
                cm = await client.get(CONFIG_MAP, CA_CONFIG_MAP[1], CA_CONFIG_MAP[0])
                break
            except UnauthorizedError:
                raise BootstrapError(f"the server {server_url} refused the join token (401 Unauthorized): it is "
                                     "unknown, expired, or not for this cluster; make a new one with 'k8py token "
                                     "create --join'") from None
            except NotFoundError:
                # a server just started: the root CA publisher has not written it yet
                if loop.time() > deadline:
                    raise BootstrapError(f"the server {server_url} has no {'/'.join(CA_CONFIG_MAP)} ConfigMap "
                                         "to take the cluster CA from") from None
                await asyncio.sleep(0.5)
    pem = str((cm.get("data") or {}).get("ca.crt") or "").encode()
    got = ca_hash(pem)
    if not hmac.compare_digest(got, token.ca_hash):
        raise BootstrapError(f"CA hash mismatch: the server {server_url} presents a CA with SHA-256 {got}, but the "
                             f"join token pins {token.ca_hash}; this is not the cluster the token is for (or "
                             "someone is in between)")
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise BootstrapError(f"the cluster CA from {server_url} is not PEM: {e}") from None
    return pem


def _failure(csr: dict[str, object]) -> str | None:
    status = csr.get("status")
    conds = status.get("conditions") if isinstance(status, dict) else None
    for c in conds or []:
        if isinstance(c, dict) and c.get("type") in ("Denied", "Failed") and c.get("status", "True") == "True":
            return f"{c.get('type')}: {c.get('reason') or ''} {c.get('message') or ''}".strip()
    return None


def _issued(csr: dict[str, object]) -> bytes | None:
    status = csr.get("status")
    data = status.get("certificate") if isinstance(status, dict) else None
    return base64.b64decode(str(data)) if data else None


async def request_certificate(client: Client, name: str, csr_pem: bytes, timeout: float, *,
                              signer: str = SIGNER, usages: Sequence[str] = USAGES) -> bytes:
    """Create the CSR (or find ours from an earlier try) and wait for its certificate."""
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": signer, "usages": list(usages)}}
    try:
        created = await client.create(CSR, body)
    except AlreadyExistsError:
        created = await client.get(CSR, name)
    log.info("bootstrap: created certificate signing request %s; waiting for it to be approved and signed", name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    current = created
    while True:
        why = _failure(current)
        if why is not None:
            raise BootstrapError(f"certificate signing request {name} was not signed ({why})")
        pem = _issued(current)
        if pem is not None:
            return pem
        left = deadline - loop.time()
        if left <= 0:
            raise BootstrapError(f"certificate signing request {name} was not signed within {timeout:g}s; is it "
                                 "approved (kubectl get csr) and does the controller manager run the csrsigning "
                                 "controller?")
        rv = str((current.get("metadata") or {}).get("resourceVersion") or "")
        try:
            async with client.watch(CSR, field_selector=f"metadata.name={name}", resource_version=rv,
                                    timeout_seconds=max(1, int(min(left, 60)))) as w:
                async for ev in w:
                    if ev.type in ("ADDED", "MODIFIED"):
                        current = ev.object
                        if _failure(current) is not None or _issued(current) is not None:
                            break
                    elif ev.type == "DELETED":
                        raise BootstrapError(f"certificate signing request {name} was deleted before it was "
                                             "signed")
        except ApiError as e:
            if e.code != 410:
                raise
            current = await client.get(CSR, name)  # our resourceVersion is too old: read it again


async def bootstrap(server_url: str, token: str, node_name: str, cert_dir: str, *,
                    timeout: float = 300.0) -> tuple[str, str, str]:
    """Credentials for ``node_name`` in ``cert_dir``: ``(cert_file, key_file, ca_file)``. See the module
    docstring. Raises :class:`BootstrapError` with the reason when it cannot get them."""
    if not node_name:
        raise BootstrapError("a node name is required")
    join = parse_join_token(token)
    have = existing_credentials(cert_dir, node_name, join.ca_hash)
    if have is not None:
        log.info("bootstrap: using the certificate already in %s", cert_dir)
        return have
    if existing_credentials(cert_dir, node_name, join.ca_hash, renew_fraction=0.0) is not None:
        # due for renewal but still valid: renewed with the node's own certificate, as kubelet does
        # (the join token may be long expired)
        try:
            return await renew_client_certificate(server_url, node_name, cert_dir, timeout=timeout)
        except (BootstrapError, ApiError, OSError) as e:
            log.info("bootstrap: renewing with the current certificate failed (%s); using the join token", e)
    ca_pem = await fetch_ca(server_url, join, timeout)
    key, csr_pem = new_key_and_csr(node_name)
    name = csr_name(key.public_key(), node_name)
    cfg = ClientConfig(server=server_url, token=join.bearer, ca_data=ca_pem)
    try:
        async with Client(cfg, component="kubelet-bootstrap", timeout=min(timeout, 60.0)) as client:
            cert_pem = await request_certificate(client, name, csr_pem, timeout)
    except UnauthorizedError:
        raise BootstrapError(f"the server {server_url} refused the join token (401 Unauthorized)") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificates(ca_pem)[0]
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise BootstrapError(f"the certificate issued for {name} is not one of the pinned CA: {e}") from None
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise BootstrapError(f"the certificate issued for {name} is not for the key this node made")
    os.makedirs(cert_dir, mode=0o700, exist_ok=True)
    cert_file, key_file, ca_file = (os.path.join(cert_dir, n) for n in (CERT_NAME, KEY_NAME, CA_NAME))
    # key first: a crash between the writes leaves a mismatched pair, which the next start rejects
    write_private_file(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    write_private_file(cert_file, cert_pem, 0o644)
    write_private_file(ca_file, ca_pem, 0o644)
    log.info("bootstrap: node %s has its client certificate (valid until %s) in %s", node_name,
             cert.not_valid_after_utc, cert_dir)
    return cert_file, key_file, ca_file


SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_USAGES = ["digital signature", "server auth"]


async def serving_certificate(client: Client, node_name: str, ips: Sequence[str], hostnames: Sequence[str],
                              cert_dir: str, *, timeout: float = 300.0, renew: bool = False) -> tuple[str, str]:
    """The kubelet API's serving certificate (``kubernetes.io/kubelet-serving``, asked for with
    the node's own credentials, as kubelet's server certificate rotation does): ``(cert_file,
    key_file)`` in ``cert_dir``. A valid one for the same addresses is reused unless ``renew``."""
    cert_file = os.path.join(cert_dir, "kubelet-serving.crt")
    key_file = os.path.join(cert_dir, "kubelet-serving.key")
    have_cert, have_key = read_if_present(cert_file), read_if_present(key_file)
    if have_cert and have_key and not renew:
        try:
            cert = x509.load_pem_x509_certificate(have_cert)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            got = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
            left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
            if got == set(ips) and left > (cert.not_valid_after_utc - cert.not_valid_before_utc) * RENEW_FRACTION:
                return cert_file, key_file
        except (ValueError, x509.ExtensionNotFound):
            pass
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, node_user(node_name))])
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    req = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName(sans), critical=False).sign(key, hashes.SHA256()))
    csr_pem = req.public_bytes(serialization.Encoding.PEM)
    h = hashlib.sha256(_spki(key.public_key()) + b"|serving")
    name = "csr-" + base64.urlsafe_b64encode(h.digest()).decode().rstrip("=").lower().replace("_", "-")[:40]
    cert_pem = await request_certificate(client, name, csr_pem, timeout, signer=SERVING_SIGNER,
                                         usages=SERVING_USAGES)
    write_private_file(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    write_private_file(cert_file, cert_pem, 0o644)
    return cert_file, key_file


PROXY_USER = "system:kube-proxy"
NETPOL_USER = "system:k8py-network-policy"
LOCAL_PATH_USER = "system:k8py-local-path-provisioner"
INGRESS_USER = "system:k8py-ingress"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
# what a node's own components run as, and their files in the node's certificate directory
COMPONENTS = {"proxy": (PROXY_USER, "kube-proxy"), "netpol": (NETPOL_USER, "network-policy"),
              "localpath": (LOCAL_PATH_USER, "local-path-provisioner"), "ingress": (INGRESS_USER, "ingress")}


async def component_certificate(client: Client, node_name: str, cert_dir: str, role: str, *,
                                timeout: float = 300.0, renew: bool = False) -> tuple[str, str]:
    """A client certificate for one of the node's components (``COMPONENTS``: the service proxy as
    ``system:kube-proxy``, the NetworkPolicy agent as ``system:k8py-network-policy``, the local-path
    provisioner as ``system:k8py-local-path-provisioner``, the ingress controller as ``system:k8py-ingress``; signer
    ``kubernetes.io/kube-apiserver-client``), asked for with the node's own credentials, as k3s's
    agents get theirs from the server: each component then runs with its own least-privilege role,
    not as the node. The CSR approving controller approves such a request from a node on its own.
    ``(cert_file, key_file)``; a valid one is reused unless ``renew``."""
    user, base = COMPONENTS[role]
    cert_file = os.path.join(cert_dir, f"{base}.crt")
    key_file = os.path.join(cert_dir, f"{base}.key")
    have_cert, have_key = read_if_present(cert_file), read_if_present(key_file)
    if have_cert and have_key and not renew:
        try:
            cert = x509.load_pem_x509_certificate(have_cert)
            left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
            if left > (cert.not_valid_after_utc - cert.not_valid_before_utc) * RENEW_FRACTION:
                return cert_file, key_file
        except ValueError:
            pass
    key = ec.generate_private_key(ec.SECP256R1())
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]))
           .sign(key, hashes.SHA256()))
    h = hashlib.sha256(_spki(key.public_key()) + f"|{role}|{node_name}".encode())
    name = "csr-" + base64.urlsafe_b64encode(h.digest()).decode().rstrip("=").lower().replace("_", "-")[:40]
    cert_pem = await request_certificate(client, name, req.public_bytes(serialization.Encoding.PEM), timeout,
                                         signer=CLIENT_SIGNER, usages=USAGES)
    write_private_file(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    write_private_file(cert_file, cert_pem, 0o644)
    return cert_file, key_file


# --------------------------------------------------------------------------- in a process of its own
# Making keys and CSRs and checking certificates needs ``cryptography``, which costs a
# long-running process about 8 MB for good. ``k8py agent`` therefore gets its credentials from a
# short-lived child process that runs this (``k8py.cli.agent``).


async def renew_client_certificate(server_url: str, node_name: str, cert_dir: str, *,
                                   timeout: float = 300.0) -> tuple[str, str, str]:
    """kubelet's client certificate rotation: a new key, and a CSR sent with the current
    certificate (approved as ``selfnodeclient``: the node renewing its own). The new pair replaces
    the old in ``cert_dir`` (key first); returns ``(cert_file, key_file, ca_file)``."""
    cert_file, key_file, ca_file = (os.path.join(cert_dir, n) for n in (CERT_NAME, KEY_NAME, CA_NAME))
    key, csr_pem = new_key_and_csr(node_name)
    name = csr_name(key.public_key(), node_name)
    cfg = ClientConfig(server=server_url, ca_file=ca_file, cert_file=cert_file, key_file=key_file)
    try:
        async with Client(cfg, component="kubelet", timeout=min(timeout, 60.0)) as client:
            cert_pem = await request_certificate(client, name, csr_pem, timeout)
    except UnauthorizedError:
        raise BootstrapError(f"the server {server_url} no longer accepts this node's certificate (401): "
                             "join again with a new token") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificates(read_if_present(ca_file) or b"")[0])
    except (ValueError, TypeError, InvalidSignature) as e:
        raise BootstrapError(f"the certificate issued for {name} is not one of the cluster CA: {e}") from None
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise BootstrapError(f"the certificate issued for {name} is not for the key this node made")
    write_private_file(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    write_private_file(cert_file, cert_pem, 0o644)
    log.info("node %s rotated its client certificate (valid until %s)", node_name, cert.not_valid_after_utc)
    return cert_file, key_file, ca_file


def _lifetime(path: str) -> list[float]:
    """``[notBefore, notAfter]`` of a certificate file, in seconds since the epoch."""
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return [cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()]


async def node_credentials(server_url: str, token: str, node_name: str, cert_dir: str, ips: Sequence[str],
                           hostnames: Sequence[str], *, rotate: Sequence[str] = ()) -> dict[str, object]:
    """The client credentials (:func:`bootstrap`, or :func:`renew_client_certificate` when
    ``rotate`` has ``"client"``) and then, with them, the serving certificate
    (:func:`serving_certificate`, a new one when ``rotate`` has ``"serving"``): the paths by role,
    and ``lifetimes``: each certificate's ``[notBefore, notAfter]`` (epoch seconds), for the
    agent's certificate manager, which does not load ``cryptography``."""
    if "client" in rotate:
        cert, key, ca = await renew_client_certificate(server_url, node_name, cert_dir)
    else:
        cert, key, ca = await bootstrap(server_url, token, node_name, cert_dir)
    async with Client(ClientConfig(server=server_url, ca_file=ca, cert_file=cert, key_file=key),
                      component="kubelet") as client:
        s_cert, s_key = await serving_certificate(client, node_name, ips, hostnames, cert_dir,
                                                  renew="serving" in rotate)
        components = {role: await component_certificate(client, node_name, cert_dir, role, renew=role in rotate)
                      for role in COMPONENTS}
    return {"cert": cert, "key": key, "ca": ca, "serving_cert": s_cert, "serving_key": s_key,
            **{f"{role}_{kind}": path for role, pair in components.items() for kind, path in zip(("cert", "key"), pair,
                                                                                                  strict=True)},
            "lifetimes": {"client": _lifetime(cert), "serving": _lifetime(s_cert),
                          **{role: _lifetime(pair[0]) for role, pair in components.items()}}}

