"""metrics-server's serving certificate: as metrics-server does without ``--tls-cert-file``, it
makes its own CA and a certificate it signs (k8s.io/apiserver's self-signed pair in
``--cert-dir``), and its APIService carries that CA as ``caBundle``, so the aggregator verifies
the name ``metrics-server.kube-system.svc``.

The files live in ``<dir>`` (0700; keys 0600): ``ca.crt``, ``tls.crt``, ``tls.key``. They are
reused while the certificate has more than 30 days left and names every address asked for; the CA
(ten years) is kept across reissues, so the ``caBundle`` does not change with them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8py.tlsfiles import write_private_file

__all__ = ["ServingFiles", "ensure_serving_certificate", "service_names"]

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ServingFiles:
    ca_file: str
    cert_file: str
    key_file: str

    def ca_bundle(self) -> bytes:
        with open(self.ca_file, "rb") as f:
            return f.read()


def service_names(name: str, namespace: str) -> tuple[str, ...]:
    """The names a Service is reached by, the last the aggregator's TLS server name."""
    return (name, f"{name}.{namespace}", f"{name}.{namespace}.svc")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load(path: str) -> x509.Certificate | None:
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError):
        return None


def _make_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"metrics-server-ca@{int(now.timestamp())}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _covers(cert: x509.Certificate, dns: tuple[str, ...], ips: tuple[str, ...]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    return set(dns) <= have_dns and {str(ipaddress.ip_address(i)) for i in ips} <= have_ips


def ensure_serving_certificate(directory: str, dns: tuple[str, ...], ips: tuple[str, ...],
                               now: dt.datetime | None = None) -> ServingFiles:
    """The CA and serving certificate in ``directory``, made or reissued as needed."""
    now = now or dt.datetime.now(dt.UTC)
    os.makedirs(directory, 0o700, exist_ok=True)
    files = ServingFiles(*(os.path.join(directory, n) for n in ("ca.crt", "tls.crt", "tls.key")))
    ca_key_path = os.path.join(directory, "ca.key")
    ca = _load(files.ca_file)
    ca_key: ec.EllipticCurvePrivateKey | None = None
    if ca is not None and os.path.exists(ca_key_path):
        with open(ca_key_path, "rb") as f:
            k = serialization.load_pem_private_key(f.read(), None)
        ca_key = k if isinstance(k, ec.EllipticCurvePrivateKey) else None
    if ca is None or ca_key is None or ca.not_valid_after_utc - now < RENEW_BEFORE:
        ca, ca_key = _make_ca(now)
        write_private_file(ca_key_path, _key_pem(ca_key))
        write_private_file(files.ca_file, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    leaf = _load(files.cert_file)
    if (leaf is not None and os.path.exists(files.key_file) and leaf.issuer == ca.subject
            and leaf.not_valid_after_utc - now > RENEW_BEFORE and _covers(leaf, dns, ips)):
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns)]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[-1] if dns else "metrics-server")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(min(now + LEAF_VALIDITY, ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private_file(files.key_file, _key_pem(key))
    write_private_file(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files
