"""The RBAC authorizer (kube's ``plugin/pkg/auth/authorizer/rbac``), with kube-apiserver's
privileged-group authorizer in front of it (``system:masters`` may do anything).

A decision reads the bindings that name the user or one of their groups (the cache's subject
index), in kube's order: ClusterRoleBindings, then the RoleBindings of the request's namespace;
the first rule that allows wins. A binding whose role does not exist is an error kept for the
denial's reason (``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``, as kube words it,
logged too); a plain "no rule allows it" has no reason, as in kube.

Decisions are cached per (user, groups, attributes) and the cache is dropped on any change to
Roles, ClusterRoles or their bindings, so a repeated request costs one dict lookup.

:meth:`RBACAuthorizer.rules_for` is kube's rule resolver (``RulesFor``): the rules a user holds in
a namespace, for SelfSubjectRulesReview and for escalation checks
(:mod:`k8py.apiserver.rbac.escalation`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from k8py.apiserver.authn import UserInfo
from k8py.apiserver.authz import PRIVILEGED_GROUP, RequestAttributes
from k8py.apiserver.rbac import escalation
from k8py.apiserver.rbac.cache import SA_PREFIX, Binding, PolicyCache, role_not_found
from k8py.apiserver.rbac.rules import Rule, rule_allows

if TYPE_CHECKING:
    from k8py.api.registry import KindInfo

__all__ = ["RBACAuthorizer"]

log = logging.getLogger(__name__)

MAX_CACHED_DECISIONS = 20_000
SYNC_TIMEOUT = 30.0


def _describe_subject(key: tuple[str, str]) -> str:
    kind, name = key
    if kind == "g":
        return f'Group "{name}"'
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        _, _, ns, sa = name.split(":")
        return f'ServiceAccount "{sa}/{ns}"'
    return f'User "{name}"'


def _describe(b: Binding, user: UserInfo) -> str:
    """kube's allow reason: ``ClusterRoleBinding "x" of ClusterRole "y" to Group "z"``."""
    keys = {("u", user.name), *(("g", g) for g in user.groups)}
    subject = next((k for k in b.subjects if k in keys), ("u", user.name))
    if b.namespace:
        return (f'RoleBinding "{b.name}/{b.namespace}" of {b.role_kind} "{b.role_name}" to '
                f"{_describe_subject(subject)}")
    return f'ClusterRoleBinding "{b.name}" of {b.role_kind} "{b.role_name}" to {_describe_subject(subject)}'


def _aggregate(errs: list[str]) -> str:
    """Go's ``utilerrors.NewAggregate`` text."""
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


class RBACAuthorizer:
    """``AuthorizerLike`` over a :class:`PolicyCache`; see the module docstring."""

    def __init__(self, cache: PolicyCache | None = None, max_cached: int = MAX_CACHED_DECISIONS) -> None:
        self.cache = cache if cache is not None else PolicyCache()
        self.max_cached = max_cached
        self._decisions: dict[tuple[str, tuple[str, ...], RequestAttributes], tuple[bool, str]] = {}
        self.cache.on_change(self._decisions.clear)

    # -- decisions -----------------------------------------------------------------------------
    def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        if PRIVILEGED_GROUP in user.groups:
            return True, ""
        key = (user.name, user.groups, attrs)
        hit = self._decisions.get(key)
        if hit is not None:
            return hit
        result = self.decide(user, attrs)
        if len(self._decisions) >= self.max_cached:
            self._decisions.clear()  # bounded: a burst of distinct requests cannot grow it forever
        self._decisions[key] = result
        return result

    def decide(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """One RBAC decision, uncached."""
        errs: list[str] = []
        for b in self.cache.bindings_for(user.name, user.groups, attrs.namespace):
            rules = self.cache.role_rules(b.role_kind, b.role_name, b.namespace)
            if rules is None:
                errs.append(role_not_found(b.role_kind, b.role_name))
                continue
            for r in rules:
                if rule_allows(r, verb=attrs.verb, is_resource_request=attrs.is_resource_request,
                               api_group=attrs.api_group, resource=attrs.resource, subresource=attrs.subresource,
                               name=attrs.name, path=attrs.path):
                    return True, "RBAC: allowed by " + _describe(b, user)
        if errs:
            log.info("RBAC: %s denied %s: %s", user.name, attrs, _aggregate(errs))
            return False, "RBAC: " + _aggregate(errs)
        return False, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """kube's ``RulesFor``: every rule bound to the user (cluster-wide, then in ``namespace``)
        and the resolution errors (roles that do not exist)."""
        rules: list[Rule] = []
        errs: list[str] = []
        for b in self.cache.bindings_for(user.name, user.groups, namespace):
            got = self.cache.role_rules(b.role_kind, b.role_name, b.namespace)
            if got is None:
                errs.append(role_not_found(b.role_kind, b.role_name))
            else:
                rules.extend(got)
        return rules, errs

    # -- writes of RBAC objects ----------------------------------------------------------------
    def confirm_no_escalation(self, user: UserInfo | None, kind: KindInfo, namespace: str, obj: dict[str, Any],
                              old: dict[str, Any] | None) -> None:
        """Refuse (403) a Role/ClusterRole or binding write that would grant what ``user`` does
        not hold (kube's policy-based RBAC storage); see :mod:`k8py.apiserver.rbac.escalation`."""
        escalation.confirm(self, user, kind, namespace, obj, old)

    # -- life ----------------------------------------------------------------------------------
    async def start(self, cp: Any) -> asyncio.Task[None]:
        """Reconcile the bootstrap policy, then keep the cache current from the store; returns
        the watch task (for the server to stop) once the cache has loaded."""
        from k8py.apiserver.rbac.bootstrap import reconcile

        await reconcile(cp.api, cp.objects, cp.registry)
        task = asyncio.get_running_loop().create_task(self.cache.run(cp.objects, cp.registry), name="rbac-policy")
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self.cache.synced.wait()
        except TimeoutError:
            log.error("the RBAC policy did not load in %.0fs; requests are refused until it does", SYNC_TIMEOUT)
        return task
