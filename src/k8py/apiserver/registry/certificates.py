"""CertificateSigningRequest (certificates.k8s.io/v1), as kube's
``pkg/registry/certificates/certificates/strategy.go``: three strategies in one object.

- **create**: ``spec.username``, ``uid``, ``groups`` and ``extra`` are the requesting user's,
  whatever the body said (:meth:`CSRStrategy.prepare_for_create_by`); status starts empty (no
  pre-approved requests);
- **update** of the main resource: spec and status are the old object's (only metadata changes);
- **/status** (the signer): spec is the old one; the certificate may be set once; Approved and
  Denied conditions may not be added there;
- **/approval** (``kubectl certificate approve|deny``, the approver): only the conditions change;
  Approved and Denied exclude each other and none may be removed.

Conditions written through /status and /approval get ``lastUpdateTime`` and
``lastTransitionTime`` filled as kube's ``populateConditionTimestamps`` does.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from k8py.api import tables
from k8py.api.corev1 import now_rfc3339
from k8py.api.errors import FieldError
from k8py.api.registry import KindInfo
from k8py.api.selectors import FieldLabels, field_path
from k8py.api.tables import AGE, NAME, Column, Row, Table
from k8py.api.validation import certificates as csr_validation
from k8py.apiserver.registry.base import Strategy

if TYPE_CHECKING:
    from k8py.apiserver.authn import UserInfo

Obj = dict[str, Any]

USER_FIELDS = ("username", "uid", "groups", "extra")


def populate_condition_timestamps(new: Obj, old: Obj, now: str | None = None) -> None:
    """``lastUpdateTime`` defaults to now; ``lastTransitionTime`` to the old condition's of the
    same type when its status did not change, else now."""
    now = now or now_rfc3339()
    old_by_type = {c.get("type"): c for c in (old.get("status") or {}).get("conditions") or []
                   if isinstance(c, dict)}
    for c in (new.get("status") or {}).get("conditions") or []:
        if not isinstance(c, dict):
            continue
        c.setdefault("status", "True")  # kube's SetDefaults_CertificateSigningRequestCondition
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            prior = old_by_type.get(c.get("type"))
            if prior is not None and prior.get("status") == c.get("status") and prior.get("lastTransitionTime"):
                c["lastTransitionTime"] = prior["lastTransitionTime"]
            else:
                c["lastTransitionTime"] = now


def csr_condition(obj: Obj) -> str:
    """kube's ``extractCSRStatus``: Denied before Approved before Pending, then Failed and Issued."""
    status = tables.status_of(obj)
    types = {c.get("type") for c in status.get("conditions") or [] if isinstance(c, dict)}
    out = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        out += ",Failed"
    if status.get("certificate"):
        out += ",Issued"
    return out


def _requested_duration(row: Row) -> str:
    seconds = tables.spec_of(row.obj).get("expirationSeconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return "<none>"
    return tables.human_duration(timedelta(seconds=seconds))


_SPEC = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec"
# kube's printers.go: the Requestor column is described by the request field's doc, as there
CSR_TABLE = Table(
    NAME,
    AGE,
    Column("SignerName", doc=(_SPEC, "signerName"),
           cell=lambda r: tables.spec_of(r.obj).get("signerName") or "<none>"),
    Column("Requestor", doc=(_SPEC, "request"), cell=lambda r: tables.spec_of(r.obj).get("username", "")),
    Column("RequestedDuration", doc=(_SPEC, "expirationSeconds"), cell=_requested_duration),
    Column("Condition", doc=("io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions"),
           cell=lambda r: csr_condition(r.obj)),
)


def _keep_status_except_meta(new: Obj, old: Obj) -> Obj:
    out = copy.deepcopy(old)
    out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get("resourceVersion") or \
        old["metadata"].get("resourceVersion")
    return out


class CSRStrategy(Strategy):
    group, kind = "certificates.k8s.io", "CertificateSigningRequest"
    table = CSR_TABLE
    field_labels = FieldLabels.of({"spec.signerName": field_path("spec", "signerName")}, namespaced=False)

    # -- create ------------------------------------------------------------------------------------
    def prepare_for_create(self, kind: KindInfo, obj: Obj) -> None:
        super().prepare_for_create(kind, obj)
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for k in USER_FIELDS:
                spec.pop(k, None)
        # Be explicit that users cannot create pre-approved certificate requests.
        obj["status"] = {}

    def prepare_for_create_by(self, kind: KindInfo, obj: Obj, user: UserInfo | None) -> None:
        """kube's PrepareForCreate reading ``genericapirequest.UserFrom(ctx)``: the requestor is
        the authenticated user, never what the body claims."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for k in USER_FIELDS:
            spec.pop(k, None)
        if user is None:
            return
        spec.update(user.to_api())

    # -- update of the main resource ---------------------------------------------------------------
    def prepare_for_update(self, kind: KindInfo, new: Obj, old: Obj) -> None:
        super().prepare_for_update(kind, new, old)
        # Updating the main resource changes metadata only.
        new["spec"] = copy.deepcopy(old.get("spec"))
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)

    # -- /status -----------------------------------------------------------------------------------
    def prepare_for_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> Obj:
        out = _keep_status_except_meta(new, old)
        out["status"] = copy.deepcopy(new.get("status")) if isinstance(new.get("status"), dict) else {}
        populate_condition_timestamps(out, old)
        return out

    def validate_status_update(self, kind: KindInfo, new: Obj, old: Obj) -> list[FieldError]:
        return csr_validation.validate_csr_status_update(new, old)

    # -- /approval ---------------------------------------------------------------------------------
    def prepare_for_approval_update(self, kind: KindInfo, new: Obj, old: Obj) -> Obj:
        """Only ``status.conditions`` is taken from the request."""
        out = _keep_status_except_meta(new, old)
        conditions = (new.get("status") or {}).get("conditions") if isinstance(new.get("status"), dict) else None
        status = out.setdefault("status", {})
        if conditions:
            status["conditions"] = copy.deepcopy(conditions)
        else:
            status.pop("conditions", None)
        populate_condition_timestamps(out, old)
        return out

    def validate_approval_update(self, kind: KindInfo, new: Obj, old: Obj) -> list[FieldError]:
        return csr_validation.validate_csr_approval_update(new, old)

    # -- any subresource write (the request path's one entry) ------------------------------------
    def prepare_for_subresource_update(self, kind: KindInfo, sub: str, new: Obj, old: Obj) -> Obj:
        if sub == "approval":
            return self.prepare_for_approval_update(kind, new, old)
        return self.prepare_for_status_update(kind, new, old)

    def validate_subresource_update(self, kind: KindInfo, sub: str, new: Obj, old: Obj) -> list[FieldError]:
        if sub == "approval":
            return self.validate_approval_update(kind, new, old)
        return self.validate_status_update(kind, new, old)


STRATEGIES: list[type[Strategy]] = [CSRStrategy]
