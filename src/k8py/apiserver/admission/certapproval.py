"""CertificateApproval (kube's ``plugin/pkg/admission/certificates/approval``): approving or
denying a CertificateSigningRequest (an update of its ``approval`` subresource, ``kubectl
certificate approve|deny``) needs ``approve`` on the synthetic resource ``signers`` named after
the request's signer (or its domain, ``kubernetes.io/*``). The signer is read from the stored
request, so changing it through ``/approval`` cannot help."""

from __future__ import annotations

from typing import Any

from k8py.apiserver.admission import Attributes, Plugin
from k8py.apiserver.admission.certutil import forbidden, is_authorized_for_signer_name, is_csr

__all__ = ["CertificateApproval"]

Obj = dict[str, Any]


class CertificateApproval(Plugin):
    name = "CertificateApproval"

    def __init__(self) -> None:
        self.authorizer: Any = None  # set by Admission.set_authorizer (kube's WantsAuthorizer)

    async def validate(self, a: Attributes, obj: Obj | None, old: Obj | None) -> None:
        if a.operation != "UPDATE" or a.subresource != "approval" or not is_csr(a) or old is None:
            return
        signer = str((old.get("spec") or {}).get("signerName") or "")
        if not is_authorized_for_signer_name(self.authorizer, a.user, "approve", signer):
            raise forbidden(a, f'user not permitted to approve requests with signerName "{signer}"')
