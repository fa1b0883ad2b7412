"""CertificateSigning (kube's ``plugin/pkg/admission/certificates/signing``): writing a
CertificateSigningRequest's ``status`` (the issued certificate, or the signer's conditions such
as ``Failed``) needs ``sign`` on the synthetic resource ``signers`` named after the request's
signer (or its domain). A status update that changes neither is let through."""

from __future__ import annotations

from typing import Any

from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.admission.certutil import forbidden, is_authorized_for_signer_name, is_csr

__all__ = ["CertificateSigning"]

Obj = dict[str, Any]


class CertificateSigning(Plugin):
    name = "CertificateSigning"

    def __init__(self) -> None:
        self.authorizer: Any = None  # set by Admission.set_authorizer (kube's WantsAuthorizer)

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.operation != "UPDATE" or a.subresource != "status" or not is_csr(a) or old is None or obj is None:
            return
        before, after = old.get("status") or {}, obj.get("status") or {}
        if (before.get("certificate") == after.get("certificate")
                and (before.get("conditions") or []) == (after.get("conditions") or [])):
            return
        signer = str((old.get("spec") or {}).get("signerName") or "")
        if not is_authorized_for_signer_name(self.authorizer, a.user, "sign", signer):
            raise forbidden(a, f'user not permitted to sign requests with signerName "{signer}"')
