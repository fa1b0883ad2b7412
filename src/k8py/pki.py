"""The cluster's certificates: a CA, the API server's serving certificate, the admin client certificate.

Generated on first start into ``config.tls_dir`` (directory 0700, every file 0600) and reused on
restart. A leaf certificate (serving or admin) is issued again, signed by the existing CA, when it is
missing, due for renewal (:func:`renewal_due`: 90 days before it expires, as k3s, or in the last
quarter of a shorter life), not signed by the current CA, or (serving only) when the subject
alternative names the current configuration needs differ from the certificate's -- e.g. after
``--bind-address`` or ``--tls-san`` changed. The CA itself is only generated when absent: replacing
it would invalidate every kubeconfig handed out.

A running server renews its certificates before they expire, without a restart
(``cli/process.py`` calls :func:`ensure_pki` again when :func:`next_renewal` comes; the TLS
server context reloads a replaced serving certificate for new handshakes, ``k8py.tlsfiles``).
Leaf certificates live ``config.cert_validity_seconds`` (a year by default).

Keys are EC P-256: fast to generate, and accepted by Go (kubectl), OpenSSL (Python) and browsers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import socket
import ssl
from collections.abc import Collection
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8py.config import ServerConfig
from k8py.tlsfiles import read_if_present, tls_server_context, write_private_file

__all__ = [
    "PKI",
    "SERVICES",
    "CertificateInfo",
    "certificate_renewal_time",
    "ensure_front_proxy_certificates",
    "ensure_kubelet_client_certificate",
    "ensure_pki",
    "inspect_certificate",
    "issue_client_certificate",
    "issue_kubelet_serving_certificate",
    "parse_san",
    "renewal_due",
    "rotate",
    "server_ssl_context",
    "serving_sans",
    "tls_server_context",
    "write_private_file",
]

log = logging.getLogger(__name__)

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
# Re-issue a leaf certificate when it expires within this window (k3s uses 90 days) ...
RENEW_BEFORE = dt.timedelta(days=90)
# ... or, for a shorter-lived certificate, when this part of its life is left.
RENEW_FRACTION = 0.25
# Backdate notBefore a little so that peers with a slightly slow clock accept a fresh certificate
# (kube's signer backdates by 5 minutes), but never by more than a tenth of a short life: a
# 1-minute certificate backdated by 5 minutes would be "due for renewal" as soon as it is made.
CLOCK_SKEW = dt.timedelta(minutes=5)

ADMIN_USER = "system:admin"
ADMIN_GROUP = "system:masters"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class PKI:
    """Paths of the PEM files in the TLS directory."""

    tls_dir: str
    ca_cert: str
    ca_key: str
    serving_cert: str
    serving_key: str
    admin_cert: str
    admin_key: str

    @classmethod
    def in_dir(cls, tls_dir: str) -> PKI:
        j = os.path.join
        return cls(
            tls_dir=tls_dir,
            ca_cert=j(tls_dir, "ca.crt"),
            ca_key=j(tls_dir, "ca.key"),
            serving_cert=j(tls_dir, "serving.crt"),
            serving_key=j(tls_dir, "serving.key"),
            admin_cert=j(tls_dir, "admin.crt"),
            admin_key=j(tls_dir, "admin.key"),
        )


# --------------------------------------------------------------------------- files


def _ensure_private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


# --------------------------------------------------------------------------- certificates


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backdate_for(validity: dt.timedelta) -> dt.timedelta:
    """How far before "now" a certificate living ``validity`` starts (see :data:`CLOCK_SKEW`)."""
    return min(CLOCK_SKEW, validity / 10)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _generate_ca(cn: str = "k8py-ca") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = _now()
    # A timestamp in the CN (as k3s does) makes a regenerated CA distinguishable from the old one.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{cn}@{int(now.timestamp())}")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    organizations: tuple[str, ...] = (),
    server: bool = False,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[_IPAddress, ...] = (),
    validity: dt.timedelta = LEAF_VALIDITY,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = _now()
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate_for(validity))
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ip) for ip in ip_addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def parse_san(value: str) -> str | _IPAddress:
    """One ``--tls-san`` entry: an IP address, or a DNS name (lower-cased; ``*.`` wildcards allowed,
    as k3s takes them). A ``ValueError`` names what is wrong."""
    v = value.strip().strip("[]")
    try:
        return ipaddress.ip_address(v)
    except ValueError:
        pass
    name = v.lower().rstrip(".")
    labels = name.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]
    if not name or len(name) > 253 or not labels or not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError(f"invalid --tls-san {value!r}: give a DNS name (e.g. lb.example.com, *.example.com) or "
                         "an IP address")
    return name


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def serving_sans(config: ServerConfig) -> tuple[tuple[str, ...], tuple[_IPAddress, ...]]:
    """The DNS names and IP addresses the serving certificate must cover for ``config``."""
    dns: list[str] = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    for host in (socket.gethostname(), config.node_name):
        host = host.strip().lower()
        if host and host.isascii() and host not in dns:
            dns.append(host)
    ips: list[_IPAddress] = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    # The first address of the service network is the ClusterIP of the `kubernetes` Service.
    first = next(ipaddress.ip_network(config.service_cidr.split(",")[0], strict=False).hosts())
    ips.append(ipaddress.ip_address(str(first)))
    if config.bind_address:
        bind = ipaddress.ip_address(config.bind_address)
        if not bind.is_unspecified and bind not in ips:
            ips.append(bind)
    # the node's addresses (--node-ip): agents on other machines reach the server there (k3s too)
    ips += [ipaddress.ip_address(a) for a in config.node_ips]
    # --tls-san: the names a load balancer in front of several servers is reached by (k3s's flag)
    for extra in config.tls_sans:
        san = parse_san(extra)
        if isinstance(san, str):
            if san not in dns:
                dns.append(san)
        else:
            ips.append(san)
    return tuple(dns), tuple(dict.fromkeys(ips))


def _load_pair(cert_path: str, key_path: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    cert_pem, key_pem = read_if_present(cert_path), read_if_present(key_path)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as e:
        log.warning("ignoring unreadable certificate %s: %s", cert_path, e)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        log.warning("ignoring %s: not an EC key", key_path)
        return None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        log.warning("ignoring %s: it does not match the key in %s", cert_path, key_path)
        return None
    return cert, key


def renewal_at(not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
    """When a certificate k8py issued itself is renewed: 90 days before it expires (k3s), or when
    the last quarter of a shorter life begins."""
    return not_after - min(RENEW_BEFORE, (not_after - not_before) * RENEW_FRACTION)


def renewal_time(cert: x509.Certificate) -> dt.datetime:
    return renewal_at(cert.not_valid_before_utc, cert.not_valid_after_utc)


def renewal_due(cert: x509.Certificate, now: dt.datetime | None = None) -> bool:
    return (now or _now()) >= renewal_time(cert)


def _leaf_still_good(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return not renewal_due(cert)


def _sans_of(cert: x509.Certificate) -> tuple[set[str], set[_IPAddress]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    ips = {ip for ip in san.get_values_for_type(x509.IPAddress) if not isinstance(ip, ipaddress.IPv4Network
                                                                                   | ipaddress.IPv6Network)}
    return set(san.get_values_for_type(x509.DNSName)), ips


def _covers(cert: x509.Certificate, dns: tuple[str, ...], ips: tuple[_IPAddress, ...]) -> bool:
    """The certificate names exactly these: a name added or taken away (``--tls-san``) reissues it."""
    return _sans_of(cert) == (set(dns), set(ips))


def _store_pair(cert_path: str, key_path: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    # Key first: a crash between the two writes leaves a mismatched pair, which _load_pair rejects.
    write_private_file(key_path, _key_pem(key))
    write_private_file(cert_path, _cert_pem(cert))


def _validity(config: ServerConfig) -> dt.timedelta:
    return dt.timedelta(seconds=config.cert_validity_seconds)


def _load_ca(pki: PKI) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = _load_pair(pki.ca_cert, pki.ca_key)
    if ca is None:
        raise FileNotFoundError(f"no usable cluster CA in {pki.tls_dir}; start `k8py server` once first")
    return ca


def ensure_pki(config: ServerConfig, *, renew: Collection[str] = ()) -> PKI:
    """Create or reuse the cluster CA, serving and admin certificates; return their paths.

    ``renew`` names certificates to issue again even when still good (:data:`SERVICES`' names:
    ``k8py certificate rotate``).
    """
    pki = PKI.in_dir(config.tls_dir)
    _ensure_private_dir(pki.tls_dir)
    validity = _validity(config)

    ca = _load_pair(pki.ca_cert, pki.ca_key)
    if ca is None:
        ca = _generate_ca()
        _store_pair(pki.ca_cert, pki.ca_key, *ca)
        log.info("generated cluster CA in %s", pki.tls_dir)
    ca_cert, ca_key = ca

    dns, ips = serving_sans(config)
    serving = _load_pair(pki.serving_cert, pki.serving_key)
    if (serving is None or not _leaf_still_good(serving[0], ca_cert) or not _covers(serving[0], dns, ips)
            or API_SERVER in renew):
        cert, key = _issue_leaf(ca_cert, ca_key, common_name="kube-apiserver", server=True, dns_names=dns,
                                ip_addresses=ips, validity=validity)
        _store_pair(pki.serving_cert, pki.serving_key, cert, key)
        log.info("issued serving certificate for %s (valid until %s)", ", ".join([*dns, *map(str, ips)]),
                 cert.not_valid_after_utc)

    admin = _load_pair(pki.admin_cert, pki.admin_key)
    if admin is None or not _leaf_still_good(admin[0], ca_cert) or ADMIN in renew:
        cert, key = _issue_leaf(ca_cert, ca_key, common_name=ADMIN_USER, organizations=(ADMIN_GROUP,),
                                validity=validity)
        _store_pair(pki.admin_cert, pki.admin_key, cert, key)
        log.info("issued admin client certificate (%s, group %s)", ADMIN_USER, ADMIN_GROUP)

    # Files someone made readable by others by hand are made private again.
    for path in (pki.ca_key, pki.ca_cert, pki.serving_key, pki.serving_cert, pki.admin_key, pki.admin_cert):
        if os.stat(path).st_mode & 0o777 != 0o600:
            os.chmod(path, 0o600)
    return pki


def issue_client_certificate(pki: PKI, user: str, groups: tuple[str, ...] = (), *,
                             validity: dt.timedelta = LEAF_VALIDITY) -> tuple[bytes, bytes]:
    """Issue a client certificate for ``user`` in ``groups``, signed by the cluster CA, living
    ``validity`` (never past the CA).

    Returns ``(certificate PEM, private key PEM)``; nothing is written to disk. Node agents
    (``system:node:<name>`` in ``system:nodes``), other components and ``k8py kubeconfig create``
    use this.
    """
    if not user:
        raise ValueError("a client certificate needs a user name")
    ca_cert, ca_key = _load_ca(pki)
    cert, key = _issue_leaf(ca_cert, ca_key, common_name=user, organizations=groups, validity=validity)
    return _cert_pem(cert), _key_pem(key)


def certificate_renewal_time(cert_pem: bytes) -> dt.datetime:
    """:func:`renewal_time` of a PEM certificate."""
    return renewal_time(x509.load_pem_x509_certificate(cert_pem))


def server_ssl_context(pki: PKI) -> ssl.SSLContext:
    """TLS server context: our serving certificate; client certificates optional, verified against the CA.

    With ``CERT_OPTIONAL`` a client that presents no certificate still connects (and may use a
    bearer token), while a certificate not signed by the cluster CA fails the handshake, as in
    kube-apiserver. A verified certificate is visible to handlers via
    ``request.transport.get_extra_info("peercert")``. A renewed serving certificate on disk is
    presented to new handshakes (``tls_server_context`` reloads it).
    """
    return tls_server_context(pki.serving_cert, pki.serving_key, pki.ca_cert, ssl.CERT_OPTIONAL)


# --------------------------------------------------------------------------- kubelet certificates
# kube-apiserver reaches kubelets (logs, exec, node proxy) with a client certificate of its own
# (kubeadm's apiserver-kubelet-client); each kubelet serves its API (port 10250) with a serving
# certificate for the node's addresses, signed by the cluster CA so the API server can verify it.

KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_CERT = "apiserver-kubelet-client.crt"
KUBELET_CLIENT_KEY = "apiserver-kubelet-client.key"


def ensure_kubelet_client_certificate(pki: PKI, *, validity: dt.timedelta = LEAF_VALIDITY,
                                      renew: bool = False) -> tuple[str, str]:
    """Create or reuse the API server's client certificate for kubelets; return (cert, key) paths.

    Issued (signed by the cluster CA) when missing, due for renewal, not signed by the current CA
    or when ``renew``, like the admin certificate; the files are 0600 in the TLS directory.
    """
    cert_path = os.path.join(pki.tls_dir, KUBELET_CLIENT_CERT)
    key_path = os.path.join(pki.tls_dir, KUBELET_CLIENT_KEY)
    ca = _load_ca(pki)
    have = _load_pair(cert_path, key_path)
    if have is None or not _leaf_still_good(have[0], ca[0]) or renew:
        cert, key = _issue_leaf(ca[0], ca[1], common_name=KUBELET_CLIENT_USER, organizations=(ADMIN_GROUP,),
                                validity=validity)
        _store_pair(cert_path, key_path, cert, key)
        log.info("issued the API server's kubelet client certificate (%s)", KUBELET_CLIENT_USER)
    for path in (cert_path, key_path):
        if os.stat(path).st_mode & 0o777 != 0o600:
            os.chmod(path, 0o600)
    return cert_path, key_path


def issue_kubelet_serving_certificate(pki: PKI, node_name: str, ips: tuple[str, ...] = (),
                                      hostnames: tuple[str, ...] = (), *,
                                      validity: dt.timedelta = LEAF_VALIDITY) -> tuple[bytes, bytes]:
    """A serving certificate for a kubelet's API on ``node_name``, valid for ``ips`` and
    ``hostnames`` (subject ``system:node:<name>`` in ``system:nodes``, as a kubelet's CSR-issued
    serving certificate). Returns ``(certificate PEM, private key PEM)``; nothing is written.
    A bad IP address is a ``ValueError`` that names it."""
    if not node_name:
        raise ValueError("a kubelet serving certificate needs the node's name")
    ca = _load_ca(pki)
    addrs: list[_IPAddress] = []
    for ip in ips:
        try:
            addrs.append(ipaddress.ip_address(ip))
        except ValueError:
            raise ValueError(f"not an IP address for the kubelet serving certificate: {ip!r}") from None
    names = tuple(dict.fromkeys(h.strip().lower() for h in (node_name, *hostnames) if h.strip()))
    cert, key = _issue_leaf(ca[0], ca[1], common_name=f"system:node:{node_name}", organizations=("system:nodes",),
                            server=True, dns_names=names, ip_addresses=tuple(dict.fromkeys(addrs)),
                            validity=validity)
    return _cert_pem(cert), _key_pem(key)


# --------------------------------------------------------------------------- front proxy
# The aggregation layer (apiserver/aggregator.py) presents a client certificate of its own to
# extension API servers, signed by a CA of its own (kube's --requestheader-client-ca-file and
# --proxy-client-cert-file; kubeadm's front-proxy-ca and front-proxy-client): an extension
# server believes the X-Remote-User headers only from a certificate of that CA with that name.

FRONT_PROXY_CA_CERT = "front-proxy-ca.crt"
FRONT_PROXY_CA_KEY = "front-proxy-ca.key"
FRONT_PROXY_CLIENT_CERT = "front-proxy-client.crt"
FRONT_PROXY_CLIENT_KEY = "front-proxy-client.key"
FRONT_PROXY_CLIENT_CN = "front-proxy-client"


@dataclass(frozen=True, slots=True)
class FrontProxyFiles:
    ca_cert: str
    client_cert: str
    client_key: str


def ensure_front_proxy_certificates(pki: PKI, *, validity: dt.timedelta = LEAF_VALIDITY) -> FrontProxyFiles:
    """Create or reuse the front-proxy CA (10 years, made once, like the cluster CA) and the
    proxy client certificate ``CN=front-proxy-client`` it signs (issued again when missing, due
    for renewal or not signed by the current front-proxy CA); files 0600 in the TLS directory."""
    j = os.path.join
    _ensure_private_dir(pki.tls_dir)
    ca_path, ca_key_path = j(pki.tls_dir, FRONT_PROXY_CA_CERT), j(pki.tls_dir, FRONT_PROXY_CA_KEY)
    cert_path, key_path = j(pki.tls_dir, FRONT_PROXY_CLIENT_CERT), j(pki.tls_dir, FRONT_PROXY_CLIENT_KEY)
    ca = _load_pair(ca_path, ca_key_path)
    if ca is None:
        ca = _generate_ca("k8py-front-proxy-ca")
        _store_pair(ca_path, ca_key_path, *ca)
        log.info("generated the front-proxy CA in %s", pki.tls_dir)
    have = _load_pair(cert_path, key_path)
    if have is None or not _leaf_still_good(have[0], ca[0]):
        cert, key = _issue_leaf(ca[0], ca[1], common_name=FRONT_PROXY_CLIENT_CN, validity=validity)
        _store_pair(cert_path, key_path, cert, key)
        log.info("issued the front-proxy client certificate (%s)", FRONT_PROXY_CLIENT_CN)
    for path in (ca_path, ca_key_path, cert_path, key_path):
        if os.stat(path).st_mode & 0o777 != 0o600:
            os.chmod(path, 0o600)
    return FrontProxyFiles(ca_path, cert_path, key_path)


# --------------------------------------------------------------------------- rotate and check
# The certificates a server issues itself, by the names `k8py certificate rotate --service` takes
# (k3s's command; its service names where they mean the same thing): (certificate, key) in the
# data directory, and whether it is a serving certificate.

API_SERVER = "api-server"
ADMIN = "admin"
KUBELET_CLIENT = "apiserver-kubelet-client"
KUBELET = "kubelet"  # the embedded node agent's serving certificate (a joined agent's comes by CSR)
SERVICES: dict[str, tuple[str, str, bool]] = {
    API_SERVER: ("tls/serving.crt", "tls/serving.key", True),
    ADMIN: ("tls/admin.crt", "tls/admin.key", False),
    KUBELET_CLIENT: (f"tls/{KUBELET_CLIENT_CERT}", f"tls/{KUBELET_CLIENT_KEY}", False),
    KUBELET: ("agent/tls/kubelet.crt", "agent/tls/kubelet.key", True),
}


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """One certificate file, as ``k8py certificate check`` lists it."""

    path: str
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    names: tuple[str, ...]
    is_ca: bool

    def status(self, now: dt.datetime | None = None) -> str:
        now = now or _now()
        if now >= self.not_after:
            return "EXPIRED"
        if now < self.not_before:
            return "NOT YET VALID"
        if not self.is_ca and renewal_at(self.not_before, self.not_after) <= now:
            return "RENEWAL DUE"
        return "OK"


def inspect_certificate(path: str) -> CertificateInfo | None:
    """What ``path`` holds (the first certificate of a PEM file), or None when it is not one."""
    pem = read_if_present(path)
    if pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    dns, ips = _sans_of(cert)
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateInfo(path, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                           cert.not_valid_before_utc, cert.not_valid_after_utc,
                           tuple(sorted(dns)) + tuple(sorted(map(str, ips))), is_ca)


def rotate(data_dir: str, services: Collection[str], validity: dt.timedelta = LEAF_VALIDITY, *,
           missing_ok: bool = False) -> list[str]:
    """Issue the named certificates of the server's ``data_dir`` again (new keys, signed by the
    cluster CA, for the same subject and names), for ``k8py certificate rotate``. Returns the
    files written; one that is not there is an error unless ``missing_ok`` (skipped).

    A running server presents a rotated serving certificate to new connections at once (its TLS
    contexts reload the files); it picks the other files up at its next renewal check. A name not
    in :data:`SERVICES` is a ``ValueError``.
    """
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}: choose from {', '.join(SERVICES)}")
    ca_cert, ca_key = _load_ca(PKI.in_dir(os.path.join(data_dir, "tls")))
    written = []
    for name in services:
        rel_cert, rel_key, serving = SERVICES[name]
        cert_file, key_file = os.path.join(data_dir, rel_cert), os.path.join(data_dir, rel_key)
        have = _load_pair(cert_file, key_file)
        if have is None:
            if missing_ok:
                continue
            raise FileNotFoundError(f"no {name} certificate in {data_dir} ({cert_file}); start `k8py server` once")
        old = have[0]
        cn = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        orgs = tuple(str(a.value) for a in old.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
        dns, ips = _sans_of(old)
        cert, key = _issue_leaf(ca_cert, ca_key, common_name=str(cn[0].value) if cn else name, organizations=orgs,
                                server=serving, dns_names=tuple(sorted(dns)),
                                ip_addresses=tuple(sorted(ips, key=str)), validity=validity)
        _store_pair(cert_file, key_file, cert, key)
        written.append(cert_file)
        log.info("rotated the %s certificate %s (valid until %s)", name, cert_file, cert.not_valid_after_utc)
    return written
