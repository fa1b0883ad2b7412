from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import ssl
import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k8py.pki import PKI, ensure_pki, issue_client_certificate, server_ssl_context


def _cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _files(pki: PKI) -> list[str]:
    return [pki.ca_cert, pki.ca_key, pki.serving_cert, pki.serving_key, pki.admin_cert, pki.admin_key]


def _contents(pki: PKI) -> dict[str, bytes]:
    out = {}
    for p in _files(pki):
        with open(p, "rb") as f:
            out[p] = f.read()
    return out


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {str(i) for i in san.get_values_for_type(x509.IPAddress)}


def test_first_start_creates_private_files(config):
    pki = ensure_pki(config)
    assert pki.tls_dir == config.tls_dir
    assert stat.S_IMODE(os.stat(pki.tls_dir).st_mode) == 0o700
    for path in _files(pki):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert not [n for n in os.listdir(pki.tls_dir) if ".tmp." in n]


def test_certificates_chain_and_names(config):
    pki = ensure_pki(config)
    ca, serving, admin = _cert(pki.ca_cert), _cert(pki.serving_cert), _cert(pki.admin_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)

    dns, ips = _sans(serving)
    assert {
        "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "node-a", socket.gethostname().lower(),
    } <= dns
    assert {"127.0.0.1", "::1", "10.43.0.1"} <= ips
    eku = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku

    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:admin"
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    eku = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_bind_address_and_service_cidr_in_sans(config):
    cfg = dataclasses.replace(config, bind_address="192.0.2.7", service_cidr="10.96.0.0/12")
    _, ips = _sans(_cert(ensure_pki(cfg).serving_cert))
    assert {"192.0.2.7", "10.96.0.1"} <= ips
    assert "10.43.0.1" not in ips


def test_wildcard_bind_address_not_in_sans(config):
    for bind in ("0.0.0.0", "::"):
        _, ips = _sans(_cert(ensure_pki(dataclasses.replace(config, bind_address=bind)).serving_cert))
        assert bind not in ips
        assert str(ipaddress.ip_address(bind)) not in ips


def test_second_start_reuses_everything(config):
    pki = ensure_pki(config)
    before = _contents(pki)
    assert ensure_pki(config) == pki
    assert _contents(pki) == before


def test_changed_sans_reissue_only_the_serving_certificate(config):
    pki = ensure_pki(config)
    before = _contents(pki)
    ensure_pki(dataclasses.replace(config, bind_address="192.0.2.9"))
    after = _contents(pki)
    assert after[pki.serving_cert] != before[pki.serving_cert]
    assert after[pki.serving_key] != before[pki.serving_key]
    for p in (pki.ca_cert, pki.ca_key, pki.admin_cert, pki.admin_key):
        assert after[p] == before[p]
    _cert(pki.serving_cert).verify_directly_issued_by(_cert(pki.ca_cert))


def test_new_ca_reissues_leaves(config):
    pki = ensure_pki(config)
    before = _contents(pki)
    os.unlink(pki.ca_key)
    ensure_pki(config)
    after = _contents(pki)
    assert all(after[p] != before[p] for p in _files(pki))
    ca = _cert(pki.ca_cert)
    _cert(pki.serving_cert).verify_directly_issued_by(ca)
    _cert(pki.admin_cert).verify_directly_issued_by(ca)


def test_mismatched_key_is_replaced(config):
    pki = ensure_pki(config)
    with open(pki.admin_key, "rb") as f:
        admin_key = f.read()
    with open(pki.serving_key, "wb") as f:
        f.write(admin_key)
    ensure_pki(config)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)  # raises if they do not match


def test_loosened_modes_are_tightened(config):
    pki = ensure_pki(config)
    os.chmod(pki.ca_key, 0o644)
    os.chmod(pki.tls_dir, 0o755)
    ensure_pki(config)
    assert stat.S_IMODE(os.stat(pki.ca_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pki.tls_dir).st_mode) == 0o700


def test_issue_client_certificate(config):
    pki = ensure_pki(config)
    cert_pem, key_pem = issue_client_certificate(pki, "system:node:n1", ("system:nodes",))
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert b"PRIVATE KEY" in key_pem


def test_server_ssl_context(config):
    ctx = server_ssl_context(ensure_pki(config))
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
