"""Escalation prevention on writes of RBAC objects (kube's ``pkg/registry/rbac/*/policybased``).

- A Role or ClusterRole may be created or changed only by a user who holds every permission it
  grants (kube's ``ConfirmNoEscalation``: the user's rules in the role's namespace cover the
  role's), or who may ``escalate`` that role; an ``aggregationRule`` needs full authority.
- A RoleBinding or ClusterRoleBinding may be written only by a user who may ``bind`` the role it
  refers to (in the binding's namespace), or who holds every permission of that role.
- ``system:masters`` may do both; an update that only changes ownerReferences or finalizers
  (the garbage collector's work) is never refused.

The refusal is kube's: ``roles.rbac.authorization.k8s.io "x" is forbidden: user "alice"
(groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not currently
held:`` and the missing rules, compacted and sorted, one per line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.apiserver.authz import PRIVILEGED_GROUP, RequestAttributes
from k8py.apiserver.rbac.cache import RBAC_GROUP, role_not_found, rules_of
from k8py.apiserver.rbac.rules import Rule, compact_rules, compact_string, covers, go_quote_list

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo
    from k8py.apiserver.authn import UserInfo
    from k8py.apiserver.rbac.authorizer import RBACAuthorizer

__all__ = ["confirm", "no_escalation_error"]

FULL_AUTHORITY = (Rule(verbs=("*",), api_groups=("*",), resources=("*",)), Rule(verbs=("*",),
                                                                              non_resource_urls=("*",)))
# metadata a write may change without an escalation check (kube's IsOnlyMutatingGCFields), plus
# what the server itself sets on every write
_GC_META = ("ownerReferences", "finalizers", "managedFields", "resourceVersion", "generation", "creationTimestamp",
            "uid", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")


def _without_gc_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_META}
    return out


def no_escalation_error(auth: RBACAuthorizer, user: UserInfo, namespace: str, wanted: tuple[Rule, ...] | list[Rule]
                        ) -> str | None:
    """kube's ``ConfirmNoEscalation``: None when the user's rules cover ``wanted``, else the message."""
    owner, resolution_errors = auth.rules_for(user, namespace)
    ok, missing = covers(owner, wanted)
    if ok:
        return None
    lines = sorted({compact_string(r) for r in compact_rules(missing)})
    msg = (f'user "{user.name}" (groups={go_quote_list(user.groups)}) is attempting to grant RBAC permissions '
           "not currently held:\n" + "\n".join(lines))
    if resolution_errors:
        msg += f"; resolution errors: [{', '.join(resolution_errors)}]"
    return msg


def confirm(auth: RBACAuthorizer, user: UserInfo | None, kind: KindInfo, namespace: str, obj: dict[str, Any],
            old: dict[str, Any] | None) -> None:
    """Raise 403 when this write of a Role, ClusterRole or binding would escalate; see the module."""
    if kind.group != RBAC_GROUP or user is None or PRIVILEGED_GROUP in user.groups:
        return
    if old is not None and _without_gc_fields(obj) == _without_gc_fields(old):
        return
    name = str((obj.get("metadata") or {}).get("name") or "")

    def refuse(detail: str) -> errors.StatusError:
        return errors.forbidden_error(f'{errors.qualified(kind.resource, kind.group)} "{name}" is forbidden: {detail}',
                                      kind.resource, kind.group, name)

    if kind.kind in ("Role", "ClusterRole"):
        escalate = RequestAttributes(verb="escalate", api_group=kind.group, resource=kind.resource,
                                     namespace=namespace, name=name, is_resource_request=True, api_version="v1")
        if auth.authorize(user, escalate)[0]:
            return
        if (kind.kind == "ClusterRole" and obj.get("aggregationRule") is not None
                and no_escalation_error(auth, user, namespace, FULL_AUTHORITY) is not None):
            raise refuse("must have cluster-admin privileges to use the aggregationRule")
        msg = no_escalation_error(auth, user, namespace, rules_of(obj))
        if msg is not None:
            raise refuse(msg)
        return
    if kind.kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef") or {}
        ref_kind, ref_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if ref_kind not in ("Role", "ClusterRole"):
            return  # validation refuses it
        bind = RequestAttributes(verb="bind", api_group=str(ref.get("apiGroup") or ""),
                                 resource="roles" if ref_kind == "Role" else "clusterroles", namespace=namespace,
                                 name=ref_name, is_resource_request=True, api_version="v1")
        if auth.authorize(user, bind)[0]:
            return
        rules = auth.cache.role_rules(ref_kind, ref_name, namespace)
        if rules is None:
            raise refuse(role_not_found(ref_kind, ref_name))
        msg = no_escalation_error(auth, user, namespace, rules)
        if msg is not None:
            raise refuse(msg)
