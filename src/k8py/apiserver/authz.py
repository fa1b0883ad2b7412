"""Authorization: may this user do this?

The request pipeline asks an ``AuthorizerLike`` with the user and the request's attributes
(kube-apiserver's ``authorizer.Attributes``) and gets ``(allowed, reason)``; a denial becomes a
403 ``Forbidden`` Status quoting the reason.

For now ``Authorizer`` allows every authenticated user. It is a separate stage with kube's
interface so that RBAC (roles and bindings read through informers) can replace it without
touching the pipeline: the server only depends on ``AuthorizerLike``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from k8py.apiserver.authn import UserInfo

__all__ = ["Authorizer", "AuthorizerLike", "RequestAttributes"]

UNAUTHENTICATED_GROUP = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"


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


class Authorizer:
    """Allows every authenticated user (RBAC comes later and replaces this class).

    Anonymous identities are denied, in case a pipeline ever passes one instead of ``None``.
    The reason is short: the pipeline's 403 message already says who cannot do what.
    """

    def authorize(self, user: UserInfo, attrs: RequestAttributes) -> tuple[bool, str]:
        if user.name == ANONYMOUS_USER or UNAUTHENTICATED_GROUP in user.groups:
            return False, "anonymous requests are not allowed"
        return True, "k8py allows every authenticated user until RBAC is implemented"
