"""CertificateSubjectRestriction (kube's ``plugin/pkg/admission/certificates/subjectrestriction``):
a CertificateSigningRequest for ``kubernetes.io/kube-apiserver-client`` may not ask for the
``system:masters`` group (O=system:masters): that group passes every authorization, so such a
certificate must come from the CA's holder (``k8py kubeconfig create``), not from an approval."""

from __future__ import annotations

from typing import Any

from cryptography.x509.oid import NameOID

from k8py.api.validation.certificates import decode_bytes, parse_csr_pem
from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.admission.certutil import forbidden, is_csr

__all__ = ["CertificateSubjectRestriction"]

Obj = dict[str, Any]

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"


class CertificateSubjectRestriction(Plugin):
    name = "CertificateSubjectRestriction"

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.operation != "CREATE" or a.subresource or not is_csr(a) or obj is None:
            return
        spec = obj.get("spec") or {}
        if spec.get("signerName") != KUBE_APISERVER_CLIENT:
            return
        try:
            req = parse_csr_pem(decode_bytes(spec.get("request")) or b"")
        except ValueError as e:
            raise forbidden(a, f"failed to parse CSR: {e}") from None
        if any(attr.value == "system:masters" for attr in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)):
            raise forbidden(a, f"use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed")
