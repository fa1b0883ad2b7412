"""CertificateSigningRequest controllers, as kube-controller-manager's ``csrsigning`` and
``csrapproving``.

**Signer** (:class:`CSRSigningController`): signs Approved requests for the built-in signers
``kubernetes.io/kube-apiserver-client``, ``kubernetes.io/kube-apiserver-client-kubelet`` and
``kubernetes.io/kubelet-serving`` with the cluster CA (options ``cluster_signing_cert_file`` and
``cluster_signing_key_file``; kube's ``--cluster-signing-*``). The certificate lasts
``spec.expirationSeconds`` (at least 10 minutes, validation says), at most :data:`MAX_DURATION`
(kube's ``--cluster-signing-duration`` default, one year) and never past the CA. A request the
signer recognizes but may not sign (usages or subject wrong for the signer) gets a ``Failed``
condition, reason ``SignerValidationFailure``, as kube's signer writes. Requests for other
signers are someone else's.

**Approver** (:class:`CSRApprovingController`): approves what a kubelet asks for on its own:

- a client certificate for ``kube-apiserver-client-kubelet`` whose subject is
  ``CN=system:node:<name>, O=system:nodes`` with client usages and no SANs, requested by a
  bootstrap token (group ``system:bootstrappers``: kube's ``nodeclient``) or by that node itself
  renewing (``selfnodeclient``);
- a serving certificate for ``kubelet-serving`` requested by the node its CN names, with only
  DNS and IP SANs (what k3s approves).

A kubelet client request is approved, as kube does, only after a SubjectAccessReview says its
requester may ``create`` ``certificatesigningrequests/nodeclient`` (a bootstrap token) or
``.../selfnodeclient`` (a node renewing its own): the RBAC bindings kubeadm creates, which
k8py's server creates too (``apiserver/rbac/bootstrap.py``), so deleting them stops automatic
approval. The condition's reason and message are kube's.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8py.api.validation.certificates import decode_bytes, parse_csr_pem
from k8py.client.controller import Controller, Result
from k8py.client.errors import NotFoundError
from k8py.controllers.base import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CSR = ("certificates.k8s.io/v1", "CertificateSigningRequest")
SAR = ("authorization.k8s.io/v1", "SubjectAccessReview")

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
SIGNERS = (KUBE_APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING)

NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"

MAX_DURATION = dt.timedelta(days=365)  # kube's --cluster-signing-duration default (8760h)
BACKDATE = dt.timedelta(minutes=5)  # kube's signer backdates notBefore for clock skew
SHORT = dt.timedelta(hours=8)  # kube's signer: a shorter life is "short" (its end is not backdated)

APPROVED_NODE_CLIENT = "Auto approving kubelet client certificate after SubjectAccessReview."
APPROVED_SELF_NODE_CLIENT = "Auto approving self kubelet client certificate after SubjectAccessReview."
APPROVED_NODE_SERVING = "Auto approving kubelet serving certificate after SubjectAccessReview."
APPROVED_NODE_PROXY = ("Auto approving the certificate of a node's own component (service proxy, NetworkPolicy agent, "
                       "local-path provisioner, ingress controller).")
PROXY_USER = "system:kube-proxy"
NODE_COMPONENT_USERS = (PROXY_USER, "system:k8py-network-policy", "system:k8py-local-path-provisioner",
                        "system:k8py-ingress")

_KEY_USAGES = ("digital signature", "key encipherment", "content commitment", "data encipherment",
               "key agreement", "cert sign", "crl sign", "encipher only", "decipher only")
_EXT_USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH, "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING, "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION, "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING, "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "ipsec end system": ExtendedKeyUsageOID.IPSEC_IKE, "ipsec tunnel": ExtendedKeyUsageOID.IPSEC_IKE,
    "ipsec user": ExtendedKeyUsageOID.IPSEC_IKE,
}


# --------------------------------------------------------------------------- what a request is (pure)


def conditions(csr: Obj) -> list[Obj]:
    return [c for c in (csr.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def has_condition(csr: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ for c in conditions(csr))


def has_true_condition(csr: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status", "True") == "True" for c in conditions(csr))


def is_approved(csr: Obj) -> bool:
    """kube's ``IsCertificateRequestApproved``: Approved and not Denied."""
    return has_condition(csr, "Approved") and not has_condition(csr, "Denied")


def _orgs(req: x509.CertificateSigningRequest) -> list[str]:
    return [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def common_name(req: x509.CertificateSigningRequest) -> str:
    cns = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


@dataclass(frozen=True, slots=True)
class SANs:
    dns: tuple[str, ...] = ()
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    other: int = 0


def sans_of(req: x509.CertificateSigningRequest) -> SANs:
    try:
        ext = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SANs()
    known = (x509.DNSName, x509.IPAddress, x509.RFC822Name, x509.UniformResourceIdentifier)
    ips = tuple(ip for ip in ext.get_values_for_type(x509.IPAddress)
                if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address))
    return SANs(tuple(ext.get_values_for_type(x509.DNSName)), ips,
                tuple(ext.get_values_for_type(x509.RFC822Name)),
                tuple(ext.get_values_for_type(x509.UniformResourceIdentifier)),
                sum(1 for n in ext if not isinstance(n, known)))


def validate_kubelet_client(req: x509.CertificateSigningRequest, usages: set[str]) -> str | None:
    """kube's ``ValidateKubeletClientCSR`` (None: valid), with its error texts."""
    if _orgs(req) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    s = sans_of(req)
    if s.dns:
        return "DNS subjectAltNames are not allowed"
    if s.emails:
        return "Email subjectAltNames are not allowed"
    if s.ips:
        return "IP subjectAltNames are not allowed"
    if s.uris or s.other:
        return "URI subjectAltNames are not allowed"
    if not common_name(req).startswith(NODE_PREFIX):
        return "subject common name does not begin with system:node:"
    if "client auth" not in usages or not usages <= {"digital signature", "key encipherment", "client auth"}:
        return "usages did not match [client auth digital signature key encipherment]"
    return None


def validate_kubelet_serving(req: x509.CertificateSigningRequest, usages: set[str]) -> str | None:
    """kube's ``ValidateKubeletServingCSR`` (None: valid)."""
    if _orgs(req) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    s = sans_of(req)
    if not s.dns and not s.ips:
        return "DNS or IP subjectAltName is required"
    if s.emails:
        return "Email subjectAltNames are not allowed"
    if s.uris or s.other:
        return "URI subjectAltNames are not allowed"
    if "server auth" not in usages or not usages <= {"digital signature", "key encipherment", "server auth"}:
        return "usages did not match [digital signature key encipherment server auth]"
    if not common_name(req).startswith(NODE_PREFIX):
        return "subject common name does not begin with system:node:"
    return None


def validate_apiserver_client(usages: list[str]) -> str | None:
    """kube's ``validAPIServerClientUsages``."""
    for u in usages:
        if u not in ("digital signature", "key encipherment", "client auth"):
            return f"invalid usage for client certificate: {u}"
    if "client auth" not in usages:
        return "missing required usage for client certificate: client auth"
    return None


def signer_error(signer: str, req: x509.CertificateSigningRequest, usages: list[str]) -> str | None:
    """Why ``signer`` may not sign this request (None: it may)."""
    if signer == KUBELET_CLIENT:
        return validate_kubelet_client(req, set(usages))
    if signer == KUBELET_SERVING:
        return validate_kubelet_serving(req, set(usages))
    return validate_apiserver_client(usages)


def parse_request(csr: Obj) -> x509.CertificateSigningRequest:
    data = decode_bytes((csr.get("spec") or {}).get("request"))
    if not data:
        raise ValueError("spec.request is not base64 PEM")
    return parse_csr_pem(data)


# --------------------------------------------------------------------------- signing


class CAError(Exception):
    """The signing CA cannot be loaded."""


@dataclass(frozen=True, slots=True)
class SigningCA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def load(cls, cert_file: str, key_file: str) -> SigningCA:
        try:
            with open(cert_file, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            with open(key_file, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
        except OSError as e:
            raise CAError(f"cannot read the signing CA: {e.strerror or e} ({e.filename})") from None
        except ValueError as e:
            raise CAError(f"the signing CA in {cert_file} / {key_file} is not PEM: {e}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise CAError(f"the signing key {key_file} is of an unsupported type")
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise CAError(f"the signing key {key_file} does not match the certificate {cert_file}")
        return cls(cert, key)

    def sign(self, req: x509.CertificateSigningRequest, usages: list[str], expiration_seconds: int | None,
             now: dt.datetime | None = None, max_duration: dt.timedelta = MAX_DURATION) -> bytes:
        """A certificate for ``req`` (its subject, public key and SANs) as PEM.

        Its life is ``expiration_seconds`` capped by ``max_duration`` (kube's
        ``--cluster-signing-duration``) and the CA's own end. As kube's signer: notBefore is
        backdated for clock skew (5 minutes), and a long-lived certificate's end is brought
        forward by as much, a short one's (under 8 hours) not. Unlike kube, a short certificate is
        backdated by at most a tenth of its life: kubelet renews at 70-90 % of notBefore..notAfter,
        which for a 10-minute certificate backdated by 5 minutes comes at once, again and again.
        """
        now = now or dt.datetime.now(dt.UTC)
        duration = max_duration
        if expiration_seconds is not None:
            duration = min(duration, dt.timedelta(seconds=expiration_seconds))
        backdate = BACKDATE if duration >= SHORT else min(BACKDATE, duration / 10)
        not_after = now + duration if duration < SHORT else now + duration - backdate
        not_after = min(not_after, self.cert.not_valid_after_utc)
        pub = req.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise TypeError("the request's public key is of an unsupported type")
        ku = {u: u in usages for u in _KEY_USAGES}
        builder = (
            x509.CertificateBuilder()
            .subject_name(req.subject)
            .issuer_name(self.cert.subject)
            .public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - backdate)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        if any(ku.values()):
            # Without any key usage asked (usages: [client auth]) there is no KeyUsage extension at all, as
            # Go writes none for 0: an empty one would forbid the key to sign the TLS handshake.
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=ku["digital signature"], content_commitment=ku["content commitment"],
                key_encipherment=ku["key encipherment"], data_encipherment=ku["data encipherment"],
                key_agreement=ku["key agreement"], key_cert_sign=False, crl_sign=ku["crl sign"],
                encipher_only=ku["encipher only"] and ku["key agreement"],
                decipher_only=ku["decipher only"] and ku["key agreement"]), critical=True)
        ekus = list(dict.fromkeys(_EXT_USAGES[u] for u in usages if u in _EXT_USAGES))
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        s = sans_of(req)
        names: list[x509.GeneralName] = [*(x509.DNSName(d) for d in s.dns), *(x509.IPAddress(i) for i in s.ips),
                                         *(x509.RFC822Name(e) for e in s.emails),
                                         *(x509.UniformResourceIdentifier(u) for u in s.uris)]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        algorithm = None if isinstance(self.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        cert = builder.sign(self.key, algorithm)
        return cert.public_bytes(serialization.Encoding.PEM)


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CSRSigningController:
    NAME = "csrsigning"

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.ca: SigningCA | None = None
        self._ca_stamp: tuple[float, float] | None = None
        opts = ctx.options
        self.cert_file, self.key_file = opts.cluster_signing_cert_file, opts.cluster_signing_key_file
        self.max_duration = (dt.timedelta(seconds=opts.cluster_signing_duration) if opts.cluster_signing_duration
                             else MAX_DURATION)
        if not self.cert_file or not self.key_file:
            log.info("csrsigning: no cluster signing certificate and key given; CSRs are not signed here")
        self.csrs = ctx.factory.informer(CSR)
        self.controller = Controller("csrsigning", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock)
        self.controller.watch(self.csrs, skip_unchanged=True)

    def signing_ca(self) -> SigningCA | None:
        """The CA, read again when its files change (a rotated CA is used without a restart)."""
        if not self.cert_file or not self.key_file:
            return None
        try:
            stamp = (os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime)
        except OSError as e:
            raise CAError(f"cannot read the signing CA: {e.strerror or e} ({e.filename})") from None
        if self.ca is None or stamp != self._ca_stamp:
            self.ca, self._ca_stamp = SigningCA.load(self.cert_file, self.key_file), stamp
        return self.ca

    async def reconcile(self, key: str) -> Result | None:
        csr = self.csrs.get(key)
        if csr is None:
            return None
        spec = csr.get("spec") or {}
        signer = spec.get("signerName")
        # Fast paths, as kube: terminal states and other signers' requests need nothing from us.
        if signer not in SIGNERS or not is_approved(csr) or has_true_condition(csr, "Failed"):
            return None
        if (csr.get("status") or {}).get("certificate"):
            return None
        ca = self.signing_ca()
        if ca is None:
            return None
        try:
            req = parse_request(csr)
        except ValueError as e:
            raise ValueError(f"unable to parse csr {key!r}: {e}") from None
        usages = [str(u) for u in spec.get("usages") or []]
        why = signer_error(str(signer), req, usages)
        new = dict(csr)
        status = dict(csr.get("status") or {})
        if why is not None:
            status["conditions"] = [*conditions(csr), {
                "type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": why,
                "lastUpdateTime": _now_rfc3339()}]
            new["status"] = status
            log.info("csrsigning: %s cannot be signed by %s: %s", key, signer, why)
        else:
            exp = spec.get("expirationSeconds")
            pem = ca.sign(req, usages, exp if isinstance(exp, int) else None, max_duration=self.max_duration)
            status["certificate"] = base64.b64encode(pem).decode()
            new["status"] = status
        try:
            # with the cached resourceVersion: a conflict means someone wrote since; the retry looks again
            await self.client.update_status(CSR, new)
        except NotFoundError:
            return None
        if why is None:
            log.info("csrsigning: signed %s (%s, %s)", key, signer, common_name(req))
        return None


# --------------------------------------------------------------------------- approving


def approval_for(csr: Obj, req: x509.CertificateSigningRequest) -> str | None:
    """The approval message when this request is one a kubelet may have on its own, else None."""
    spec = csr.get("spec") or {}
    signer = spec.get("signerName")
    usages = {str(u) for u in spec.get("usages") or []}
    username = str(spec.get("username") or "")
    groups = {str(g) for g in spec.get("groups") or []}
    cn = common_name(req)
    if signer == KUBELET_CLIENT:
        if validate_kubelet_client(req, usages) is not None:
            return None
        if username == cn and NODES_GROUP in groups:
            return APPROVED_SELF_NODE_CLIENT  # selfnodeclient: the node renewing its own
        if BOOTSTRAPPERS_GROUP in groups:
            return APPROVED_NODE_CLIENT  # nodeclient: a bootstrap token asking for a node
        return None
    if signer == KUBELET_SERVING:
        if validate_kubelet_serving(req, usages) is not None:
            return None
        if username == cn and NODES_GROUP in groups:
            return APPROVED_NODE_SERVING
    if signer == KUBE_APISERVER_CLIENT and cn in NODE_COMPONENT_USERS and not _orgs(req) and NODES_GROUP in groups and \
            username.startswith(NODE_PREFIX) and usages <= {"digital signature", "key encipherment", "client auth"} \
            and "client auth" in usages and sans_of(req) == SANs():
        # k8py's own: a node's service proxy runs as system:kube-proxy, its NetworkPolicy agent
        # as system:k8py-network-policy, its local-path provisioner as
        # system:k8py-local-path-provisioner and its ingress controller as system:k8py-ingress (k3s's
        # agents get such certificates from their server);
        # nothing else is asked for with them
        return APPROVED_NODE_PROXY
    return None


# kube's recognizers: the permission a requester must hold for each kind of request approved
SAR_SUBRESOURCE = {APPROVED_SELF_NODE_CLIENT: "selfnodeclient", APPROVED_NODE_CLIENT: "nodeclient"}


class CSRApprovingController:
    NAME = "csrapproving"

    async def requester_may(self, csr: Obj, subresource: str) -> bool:
        """A SubjectAccessReview for the CSR's requester (kube's ``sarApprover.authorize``)."""
        spec = csr.get("spec") or {}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": spec.get("username") or "", "groups": list(spec.get("groups") or []),
            "uid": spec.get("uid") or "", "extra": spec.get("extra") or {},
            "resourceAttributes": {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                                   "verb": "create", "subresource": subresource, "version": "*"}}}
        got = await self.client.create(SAR, review)
        return bool((got.get("status") or {}).get("allowed"))

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.csrs = ctx.factory.informer(CSR)
        self.controller = Controller("csrapproving", self.reconcile, workers=ctx.options.workers or 2,
                                     clock=ctx.clock)
        self.controller.watch(self.csrs, skip_unchanged=True)

    async def reconcile(self, key: str) -> Result | None:
        csr = self.csrs.get(key)
        if csr is None:
            return None
        if (csr.get("status") or {}).get("certificate"):
            return None
        if has_condition(csr, "Approved") or has_condition(csr, "Denied"):
            return None
        if (csr.get("spec") or {}).get("signerName") not in (KUBELET_CLIENT, KUBELET_SERVING, KUBE_APISERVER_CLIENT):
            return None
        try:
            req = parse_request(csr)
        except (ValueError, InvalidSignature) as e:
            raise ValueError(f"unable to parse csr {key!r}: {e}") from None
        message = approval_for(csr, req)
        if message is None:
            return None  # not ours to approve: a person decides (kubectl certificate approve|deny)
        permission = SAR_SUBRESOURCE.get(message)
        if permission is not None and not await self.requester_may(csr, permission):
            log.info("csrapproving: recognized %s as %s but subject access review was not approved", key,
                     permission)
            return None
        new = dict(csr)
        new["status"] = {**(csr.get("status") or {}), "conditions": [*conditions(csr), {
            "type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
            "lastUpdateTime": _now_rfc3339()}]}
        try:
            await self.client.update(CSR, new, subresource="approval")
        except NotFoundError:
            return None
        log.info("csrapproving: approved %s (%s, requested by %s)", key, common_name(req),
                 (csr.get("spec") or {}).get("username"))
        return None
