"""Authorization: may this user do this?

The request pipeline asks an ``AuthorizerLike`` with the user and the request's attributes
(kube-apiserver's ``authorizer.Attributes``) and gets ``(allowed, reason)``; a denial becomes a
403 ``Forbidden`` Status whose message :func:`forbidden` words exactly as kube-apiserver's
``responsewriters.Forbidden`` (the one place that formats it): ``pods is forbidden: User "alice"
cannot list resource "pods" in API group "" in the namespace "default"``, then ``: <reason>``
when the authorizer gave one.

The authorizer ``k8py server`` runs is kube-apiserver's ``--authorization-mode=Node,RBAC``: a
:class:`UnionAuthorizer` of the Node authorizer (:mod:`k8py.apiserver.rbac.node`) and RBAC
(:mod:`k8py.apiserver.rbac`); the pipeline depends only on ``AuthorizerLike``.

Impersonation (kube's ``WithImpersonation`` filter) lives here too, because it is authorization:
:func:`impersonate` reads the ``Impersonate-User``, ``Impersonate-Group``, ``Impersonate-Uid``
and ``Impersonate-Extra-<key>`` headers and asks the authorizer, for each, whether the requester
may ``impersonate`` that user (``users``, or ``serviceaccounts`` in its namespace for a
``system:serviceaccount:<ns>:<name>`` user), group (``groups``), uid (``uids``) or extra value
(``userextras/<key>``), as kube does. The request then runs as the impersonated user, who gets
``system:authenticated`` (and a service account its ``system:serviceaccounts`` groups when no
group was asked for).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from k8py.api import errors
from k8py.apiserver.authn import AUTHENTICATED_GROUP, UserInfo

__all__ = [
    "AuthorizerLike",
    "RequestAttributes",
    "UnionAuthorizer",
    "forbidden",
    "forbidden_message",
    "impersonate",
]

UNAUTHENTICATED_GROUP = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
PRIVILEGED_GROUP = "system:masters"  # kube's user.SystemPrivilegedGroup: always allowed
SA_USER_PREFIX = "system:serviceaccount:"

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_EXTRA_PREFIX = "Impersonate-Extra-"


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a request wants to do, as RBAC sees it."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection; http verb otherwise
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    is_resource_request: bool = False
    api_version: str = ""
    # A list's or watch's field selector, as (field, operator, value) with operator "=" or "!="
    # (kube's ``GetFieldSelector``): the Node authorizer lets a node list only its own pods.
    # Not part of equality, so RBAC's decision cache (which ignores selectors) keys without it.
    field_requirements: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)

    @classmethod
    def from_request_info(cls, info: Any) -> RequestAttributes:
        """Build from ``k8py.apiserver.requestinfo.RequestInfo`` (duck-typed to keep imports one-way)."""
        return cls(
            verb=info.verb,
            api_group=info.group,
            resource=info.resource,
            subresource=info.subresource,
            namespace=info.namespace,
            name=info.name,
            path=info.path,
            is_resource_request=info.is_resource_request,
            api_version=info.version,
        )


class AuthorizerLike(Protocol):
    def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        """Return ``(allowed, reason)``; the reason is shown to the user on denial."""
        ...


class UnionAuthorizer:
    """kube's ``authorization/union``: each authorizer in turn (``--authorization-mode=Node,RBAC``
    is ``UnionAuthorizer(NodeAuthorizer(), RBACAuthorizer())``); the first that allows decides.
    Every authorizer here only allows or has no opinion, so a denial's reason is the reasons
    given, joined by newlines, as kube's union joins them.

    It is what the server holds as its authorizer: the rule resolver (``rules_for``) is the union
    of the members' rules, the escalation check and ``start`` go to the members that have them."""

    def __init__(self, *authorizers: Any) -> None:
        self.authorizers = authorizers

    def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        reasons: list[str] = []
        for a in self.authorizers:
            ok, reason = a.authorize(user, attrs)
            if ok:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, "\n".join(reasons)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Any], list[str]]:
        rules: list[Any] = []
        errs: list[str] = []
        for a in self.authorizers:
            resolve = getattr(a, "rules_for", None)
            if resolve is not None:
                got, e = resolve(user, namespace)
                rules.extend(got)
                errs.extend(e)
        return rules, errs

    def incomplete_for(self, user: UserInfo) -> bool:
        """Whether ``rules_for`` cannot list all of this user's permissions (kube's ``incomplete``
        of a rules review: a node's follow its pods)."""
        return any(getattr(a, "incomplete_for", None) is not None and a.incomplete_for(user)
                   for a in self.authorizers)

    def confirm_no_escalation(self, *args: Any) -> None:
        for a in self.authorizers:
            check = getattr(a, "confirm_no_escalation", None)
            if check is not None:
                check(*args)

    async def start(self, cp: Any) -> asyncio.Task[None]:
        """Start each member that keeps state (RBAC's policy, the Node authorizer's graph) and
        return one task that runs them all."""
        tasks = [await a.start(cp) for a in self.authorizers if hasattr(a, "start")]

        async def run() -> None:
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        return asyncio.get_running_loop().create_task(run(), name="authorizers")


def forbidden_message(user: str, attrs: RequestAttributes) -> str:
    """kube's ``forbiddenMessage`` (:func:`k8py.api.errors.forbidden_message`)."""
    return errors.forbidden_message(user, attrs)


def forbidden(user: str, attrs: RequestAttributes, reason: str = "") -> errors.StatusError:
    """The 403 of kube's ``responsewriters.Forbidden`` (:func:`k8py.api.errors.forbidden_request`)."""
    return errors.forbidden_request(user, attrs, reason)


# --------------------------------------------------------------------------- impersonation


def _impersonation_targets(headers: Mapping[str, str], getall: Any) -> list[tuple[RequestAttributes, str]] | None:
    """The checks an impersonating request needs, each an (attributes, header value) pair; None
    when the request impersonates nobody."""
    user = headers.get(IMPERSONATE_USER, "")
    groups = [g for g in getall(IMPERSONATE_GROUP) if g]
    uid = headers.get(IMPERSONATE_UID, "")
    extras: list[tuple[str, str]] = []
    for h in headers:
        if h.lower().startswith(IMPERSONATE_EXTRA_PREFIX.lower()):
            key = unquote(h[len(IMPERSONATE_EXTRA_PREFIX):]).lower()
            extras.extend((key, v) for v in getall(h))
    extras = list(dict.fromkeys(extras))
    if not user and not groups and not uid and not extras:
        return None
    out: list[tuple[RequestAttributes, str]] = []
    if user.startswith(SA_USER_PREFIX) and user.count(":") == 3:
        _, _, ns, name = user.split(":")
        out.append((RequestAttributes(verb="impersonate", resource="serviceaccounts", namespace=ns, name=name,
                                      is_resource_request=True, api_version="v1"), user))
    elif user:
        out.append((RequestAttributes(verb="impersonate", resource="users", name=user, is_resource_request=True,
                                      api_version="v1"), user))
    for g in dict.fromkeys(groups):
        out.append((RequestAttributes(verb="impersonate", resource="groups", name=g, is_resource_request=True,
                                      api_version="v1"), g))
    for key, value in extras:
        out.append((RequestAttributes(verb="impersonate", api_group="authentication.k8s.io", resource="userextras",
                                      subresource=key, name=value, is_resource_request=True, api_version="v1"),
                    value))
    if uid:
        out.append((RequestAttributes(verb="impersonate", api_group="authentication.k8s.io", resource="uids",
                                      name=uid, is_resource_request=True, api_version="v1"), uid))
    if not user:
        # kube answers this with an internal error (buildImpersonationRequests' error)
        what = ", ".join(f"{a.resource}={v}" for a, v in out)
        raise errors.internal_error(f"requested [{what}] without impersonating a user")
    return out


def impersonate(requester: UserInfo, headers: Any, authorizer: AuthorizerLike | None) -> UserInfo:
    """The user a request runs as: ``requester`` unless it carries impersonation headers, each of
    which must be allowed (verb ``impersonate``), else 403 with kube's message."""
    def getall(k: str) -> list[str]:
        if hasattr(headers, "getall"):
            return list(headers.getall(k, []))
        return [headers[k]] if k in headers else []

    targets = _impersonation_targets(headers, getall)
    if targets is None:
        return requester
    name = uid = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    group_given = False
    for attrs, value in targets:
        if authorizer is not None:
            ok, reason = authorizer.authorize(requester, attrs)
            if not ok:
                raise forbidden(requester.name, attrs, reason)
        if attrs.resource in ("users", "serviceaccounts"):
            name = value
        elif attrs.resource == "groups":
            groups.append(value)
            group_given = True
        elif attrs.resource == "userextras":
            extra.setdefault(attrs.subresource, []).append(value)
        elif attrs.resource == "uids":
            uid = value
    if name.startswith(SA_USER_PREFIX) and not group_given:
        ns = name.split(":")[2]
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    if name != ANONYMOUS_USER and AUTHENTICATED_GROUP not in groups:
        groups.append(AUTHENTICATED_GROUP)
    elif name == ANONYMOUS_USER and UNAUTHENTICATED_GROUP not in groups:
        groups.append(UNAUTHENTICATED_GROUP)
    return UserInfo(name=name, uid=uid, groups=tuple(groups), extra={k: tuple(v) for k, v in extra.items()})
