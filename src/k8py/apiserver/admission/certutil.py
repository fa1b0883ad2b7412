"""What kube's three certificate admission plugins share (``plugin/pkg/admission/certificates``):
the check that a user may ``approve`` or ``sign`` for a signer name, on the synthetic
``certificates.k8s.io`` resource ``signers`` named after it, or after its domain (``example.com/*``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.apiserver.admission import Attributes

if TYPE_CHECKING:
    from k8py.apiserver.authn import UserInfo

__all__ = ["CSR_GROUP", "CSR_RESOURCE", "forbidden", "is_authorized_for_signer_name", "is_csr"]

CSR_GROUP, CSR_RESOURCE = "certificates.k8s.io", "certificatesigningrequests"


def is_csr(a: Attributes) -> bool:
    return a.kind.group == CSR_GROUP and a.kind.resource == CSR_RESOURCE


def is_authorized_for_signer_name(authorizer: Any, user: UserInfo | None, verb: str, signer: str) -> bool:
    """kube's ``IsAuthorizedForSignerName``: ``verb`` on ``signers/<signer>``, else on
    ``signers/<domain>/*``. Without an authorizer (a server that authorizes nothing) or a user
    (the API server itself), everything is allowed."""
    if authorizer is None or user is None:
        return True
    from k8py.apiserver.authz import RequestAttributes

    for name in (signer, signer.split("/", 1)[0] + "/*"):
        attrs = RequestAttributes(verb=verb, api_group=CSR_GROUP, resource="signers", name=name,
                                  is_resource_request=True, api_version="*")
        ok, _ = authorizer.authorize(user, attrs)
        if ok:
            return True
    return False


def forbidden(a: Attributes, why: str) -> errors.StatusError:
    """kube's ``admission.NewForbidden`` for a CertificateSigningRequest."""
    res = errors.qualified(a.kind.resource, a.kind.group)
    msg = f'{res} "{a.name}" is forbidden: {why}' if a.name else f"{res} is forbidden: {why}"
    return errors.forbidden_error(msg, a.kind.resource, a.kind.group, a.name)
