"""kube's certificate admission plugins: CertificateApproval (approve on signers), CertificateSigning
(sign on signers, only when the certificate or conditions change), CertificateSubjectRestriction
(no system:masters through kube-apiserver-client), with kube's messages."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8py.api import errors
from k8py.api.registry import Registry
from k8py.apiserver.admission import Attributes
from k8py.apiserver.admission.certapproval import CertificateApproval
from k8py.apiserver.admission.certsigning import CertificateSigning
from k8py.apiserver.admission.certsubjectrestriction import CertificateSubjectRestriction
from k8py.apiserver.authn import UserInfo

KIND = Registry().by_resource("certificates.k8s.io", "v1", "certificatesigningrequests")
ALICE = UserInfo("alice", groups=("system:authenticated",))


class Authz:
    """Allows ``verb`` on ``signers`` with the names given."""

    def __init__(self, **allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.asked: list[tuple[str, str]] = []

    def authorize(self, user: UserInfo, attrs: Any) -> tuple[bool, str]:
        assert (attrs.api_group, attrs.resource, attrs.api_version) == ("certificates.k8s.io", "signers", "*")
        self.asked.append((attrs.verb, attrs.name))
        return attrs.name in self.allowed.get(attrs.verb, ()), ""


def attrs(op: str, sub: str = "", name: str = "req") -> Attributes:
    assert KIND is not None
    return Attributes(op, KIND, "", name, sub, user=ALICE)


def csr(signer: str, orgs: tuple[str, ...] = (), **status: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, "alice"))
    pem = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject)).sign(key, hashes.SHA256()) \
        .public_bytes(serialization.Encoding.PEM)
    return {"metadata": {"name": "req"}, "spec": {"signerName": signer, "request": base64.b64encode(pem).decode()},
            "status": status}


async def test_approval_needs_approve_on_the_signer_or_its_domain() -> None:
    p = CertificateApproval()
    old = csr("example.com/issuer")
    p.authorizer = Authz()
    with pytest.raises(errors.StatusError) as e:
        await p.validate(attrs("UPDATE", "approval"), csr("example.com/other"), old)
    assert e.value.code == 403
    assert e.value.message == ('certificatesigningrequests.certificates.k8s.io "req" is forbidden: user not '
                               'permitted to approve requests with signerName "example.com/issuer"')  # the old one
    assert p.authorizer.asked == [("approve", "example.com/issuer"), ("approve", "example.com/*")]
    p.authorizer = Authz(approve=("example.com/*",))
    await p.validate(attrs("UPDATE", "approval"), old, old)
    p.authorizer = Authz(approve=("example.com/issuer",))
    await p.validate(attrs("UPDATE", "approval"), old, old)
    # other writes are not its business
    p.authorizer = Authz()
    await p.validate(attrs("UPDATE"), old, old)
    await p.validate(attrs("UPDATE", "status"), old, old)


async def test_signing_needs_sign_when_the_certificate_or_conditions_change() -> None:
    p = CertificateSigning()
    p.authorizer = Authz()
    old = csr("kubernetes.io/kube-apiserver-client")
    await p.validate(attrs("UPDATE", "status"), old, old)  # nothing changed: allowed
    issued = {**old, "status": {"certificate": "Y2VydA=="}}
    with pytest.raises(errors.StatusError, match='user not permitted to sign requests with signerName '
                                                 '"kubernetes.io/kube-apiserver-client"'):
        await p.validate(attrs("UPDATE", "status"), issued, old)
    failed = {**old, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    with pytest.raises(errors.StatusError):
        await p.validate(attrs("UPDATE", "status"), failed, old)
    p.authorizer = Authz(sign=("kubernetes.io/*",))
    await p.validate(attrs("UPDATE", "status"), issued, old)


async def test_no_system_masters_through_the_kube_apiserver_client_signer() -> None:
    p = CertificateSubjectRestriction()
    with pytest.raises(errors.StatusError) as e:
        await p.validate(attrs("CREATE"), csr("kubernetes.io/kube-apiserver-client", ("dev", "system:masters")), None)
    assert e.value.code == 403 and e.value.message == (
        'certificatesigningrequests.certificates.k8s.io "req" is forbidden: use of kubernetes.io/kube-apiserver-client '
        "signer with system:masters group is not allowed")
    await p.validate(attrs("CREATE"), csr("kubernetes.io/kube-apiserver-client", ("dev",)), None)
    await p.validate(attrs("CREATE"), csr("example.com/any", ("system:masters",)), None)  # other signers: theirs


async def test_without_an_authorizer_everything_is_allowed() -> None:
    old = csr("example.com/issuer")
    await CertificateApproval().validate(attrs("UPDATE", "approval"), old, old)
    await CertificateSigning().validate(attrs("UPDATE", "status"), {**old, "status": {"certificate": "eA=="}}, old)
