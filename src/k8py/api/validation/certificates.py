"""certificates.k8s.io/v1 CertificateSigningRequest, as kube's
``pkg/apis/certificates/validation``: the request must be a PEM ``CERTIFICATE REQUEST`` with a
valid signature, ``signerName`` a fully qualified ``domain/path``, usages known and not
repeated, ``expirationSeconds`` at least 600; conditions True/False/Unknown, Approved and Denied
only True and never both; ``status.certificate`` PEM ``CERTIFICATE`` blocks only.

Updates may not remove an Approved, Denied or Failed condition; only the approval subresource
may add Approved or Denied; only the status subresource may set the certificate, and only once.
``spec.request`` and ``status.certificate`` are ``[]byte`` in Go: base64 on the wire.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography import x509

from k8py.api.errors import duplicate, forbidden, invalid, not_supported, required, too_long
from k8py.api.validation.meta import (
    Errs,
    d_,
    is_dns1123_label,
    is_dns1123_subdomain,
    l_,
    s_,
    validate_object_meta,
    validate_object_meta_update,
)

__all__ = [
    "VALID_USAGES",
    "decode_bytes",
    "find_conditions",
    "parse_csr_pem",
    "validate_csr",
    "validate_csr_approval_update",
    "validate_csr_status_update",
    "validate_csr_update",
    "validate_signer_name",
]

VALID_USAGES = (
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
)
_SORTED_USAGES = tuple(sorted(VALID_USAGES))
LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"
MIN_EXPIRATION_SECONDS = 600
_DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_LABEL_MAX = 63


def decode_bytes(value: Any) -> bytes | None:
    """A Go ``[]byte`` field as it travels in JSON (base64); None when it is not valid base64."""
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_csr_pem(data: bytes) -> x509.CertificateSigningRequest:
    """kube's ``ParseCSR`` + ``CheckSignature``; ValueError with kube's text when it is not one."""
    text = data.lstrip()
    if not text.startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise ValueError(f"x509: malformed certificate request: {e}") from None
    if not csr.is_signature_valid:
        raise ValueError("x509: ECDSA verification failure")
    return csr


def validate_signer_name(path: str, name: str) -> Errs:
    """``ValidateSignerName``: ``<domain with a dot>/<path of DNS-1123 subdomains>``."""
    if not name:
        return [required(path, "")]
    segments = name.split("/")
    if len(segments) != 2:
        return [invalid(path, name, "must be a fully qualified domain and path of the form "
                                    "'example.com/signer-name'")]
    errs: Errs = []
    domain, rest = segments
    if len(domain) > _DNS1123_SUBDOMAIN_MAX:
        errs.append(too_long(path, _DNS1123_SUBDOMAIN_MAX))
    labels = domain.split(".")
    for lbl in labels:
        bad = is_dns1123_label(lbl)
        if bad:
            errs += [invalid(path, domain, f'validating label "{lbl}": {m}') for m in bad]
            break
    if len(labels) < 2:
        errs.append(invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for comp in rest.split("."):
        bad = is_dns1123_subdomain(comp)
        if bad:
            errs += [invalid(path, rest, f'validating component "{comp}": {m}') for m in bad]
            break
    max_path = _DNS1123_SUBDOMAIN_MAX - _DNS1123_LABEL_MAX - 1
    if len(rest) > max_path:
        errs.append(too_long(path, max_path))
    return errs


def _certificate_error(data: bytes) -> str | None:
    """kube's ``validateCertificate``: None when empty or only valid CERTIFICATE blocks."""
    if not data:
        return None
    blocks = 0
    rest = data
    begin = b"-----BEGIN "
    while True:
        i = rest.find(begin)
        if i < 0:
            break
        j = rest.find(b"-----", i + len(begin))
        if j < 0:
            break
        block_type = rest[i + len(begin):j].decode("ascii", "replace")
        end_marker = b"-----END " + rest[i + len(begin):j] + b"-----"
        k = rest.find(end_marker, j)
        if k < 0:
            break
        block = rest[i:k + len(end_marker)]
        rest = rest[k + len(end_marker):]
        if block_type != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{block_type}"'
        lines = block.splitlines()
        if len(lines) > 1 and b":" in lines[1]:
            return "no PEM block headers are permitted"
        blocks += 1
        try:
            x509.load_pem_x509_certificate(block)
        except ValueError as e:
            return f"x509: malformed certificate: {e}"
    if blocks == 0:
        return "must contain at least one CERTIFICATE PEM block"
    return None


def find_conditions(obj: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [d_(c) for c in l_(d_(obj.get("status")).get("conditions")) if d_(c).get("type") == type_]


def _validate_conditions(obj: dict[str, Any]) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    approved = denied = False
    conditions = l_(d_(obj.get("status")).get("conditions"))
    for i, raw in enumerate(conditions):
        c = d_(raw)
        p = f"status.conditions[{i}]"
        t, st = s_(c.get("type")), s_(c.get("status"))
        if not t:
            errs.append(required(f"{p}.type", ""))
        if st not in ("True", "False", "Unknown"):
            errs.append(not_supported(f"{p}.status", st, ["False", "True", "Unknown"]))
        if t in seen:
            errs.append(duplicate(f"{p}.type", t))
        seen.add(t)
        if t in ("Approved", "Denied"):
            approved, denied = approved or t == "Approved", denied or t == "Denied"
            if st != "True":
                errs.append(not_supported(f"{p}.status", st, ["True"]))
    if approved and denied:
        errs.append(invalid("status.conditions", conditions, "Approved and Denied conditions are mutually exclusive"))
    return errs


def _validate_body(obj: dict[str, Any]) -> Errs:
    spec = d_(obj.get("spec"))
    errs: Errs = []
    request = decode_bytes(spec.get("request"))
    if request is None:
        errs.append(invalid("spec.request", spec.get("request"), "must be base64-encoded PEM data"))
    elif not request:
        errs.append(invalid("spec.request", "", "PEM block type must be CERTIFICATE REQUEST"))
    else:
        try:
            parse_csr_pem(request)
        except ValueError as e:
            errs.append(invalid("spec.request", spec.get("request"), str(e)))
    usages = l_(spec.get("usages"))
    if not usages:
        errs.append(required("spec.usages", "usages must be provided"))
    seen: set[str] = set()
    for i, u in enumerate(usages):
        if u not in VALID_USAGES:
            errs.append(not_supported(f"spec.usages[{i}]", u, _SORTED_USAGES))
    for i, u in enumerate(usages):
        if u in seen:
            errs.append(duplicate(f"spec.usages[{i}]", u))
        seen.add(u)
    signer = s_(spec.get("signerName"))
    if signer == LEGACY_UNKNOWN_SIGNER:
        errs.append(invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version"))
    else:
        errs += validate_signer_name("spec.signerName", signer)
    exp = spec.get("expirationSeconds")
    if exp is not None and (not isinstance(exp, int) or exp < MIN_EXPIRATION_SECONDS):
        errs.append(invalid("spec.expirationSeconds", exp, "may not specify a duration less than 600 seconds "
                                                            "(10 minutes)"))
    errs += _validate_conditions(obj)
    cert = decode_bytes(d_(obj.get("status")).get("certificate"))
    if cert is None:
        errs.append(invalid("status.certificate", "<certificate data>", "must be base64-encoded PEM data"))
    else:
        why = _certificate_error(cert)
        if why:
            errs.append(invalid("status.certificate", "<certificate data>", why))
    return errs


def _any_name(name: str, prefix: bool) -> list[str]:
    return []  # kube: "We don't care what you call your certificate requests."


def validate_csr(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), False, _any_name) + _validate_body(obj)


def _update(new: dict[str, Any], old: dict[str, Any], *, approval: bool, certificate: bool) -> Errs:
    errs = _validate_body(new)
    for t in ("Approved", "Denied", "Failed"):
        if len(find_conditions(new, t)) < len(find_conditions(old, t)):
            errs.append(forbidden("status.conditions", f'updates may not remove a condition of type "{t}"'))
    if not approval:
        for t in ("Approved", "Denied"):
            if len(find_conditions(new, t)) > len(find_conditions(old, t)):
                errs.append(forbidden("status.conditions", f'updates may not add a condition of type "{t}"'))
    new_cert = d_(new.get("status")).get("certificate") or ""
    old_cert = d_(old.get("status")).get("certificate") or ""
    if not certificate:
        if new_cert != old_cert:
            errs.append(forbidden("status.certificate", "updates may not set certificate content"))
    elif old_cert and new_cert != old_cert:
        errs.append(forbidden("status.certificate", "updates may not modify existing certificate content"))
    return errs + validate_object_meta_update(new.get("metadata"), old.get("metadata"))


def validate_csr_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, approval=False, certificate=False)


def validate_csr_status_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, approval=False, certificate=True)


def validate_csr_approval_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, approval=True, certificate=False)
