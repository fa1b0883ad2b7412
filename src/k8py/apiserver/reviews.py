"""Review kinds: questions the API server answers on create and never stores.

- authentication.k8s.io/v1 SelfSubjectReview: who am I (``kubectl auth whoami``)
- authorization.k8s.io/v1 SelfSubjectAccessReview / SubjectAccessReview: may this user do
  this (``kubectl auth can-i``), answered by the same authorizer that guards requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.apiserver.authn import UserInfo
from k8py.apiserver.authz import RequestAttributes

if TYPE_CHECKING:
    from k8py.apiserver.authz import AuthorizerLike

Obj = dict[str, Any]


def _user_info(u: UserInfo) -> Obj:
    out: Obj = {"username": u.name, "groups": list(u.groups)}
    if u.uid:
        out["uid"] = u.uid
    if u.extra:
        out["extra"] = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in u.extra.items()}
    return out


def answer(kind: str, body: Obj, user: UserInfo | None, authorizer: AuthorizerLike | None) -> Obj:
    out = dict(body)
    out.setdefault("metadata", {})
    out["metadata"].setdefault("creationTimestamp", None)
    if kind == "SelfSubjectReview":
        if user is None:
            raise errors.forbidden_error("selfsubjectreviews is forbidden: anonymous user")
        out["status"] = {"userInfo": _user_info(user)}
        return out
    spec = body.get("spec") or {}
    if kind == "SubjectAccessReview":
        name = spec.get("user") or ""
        if not name and not spec.get("groups"):
            raise errors.invalid_error("SubjectAccessReview", "authorization.k8s.io", "", [
                errors.invalid("spec.user", "", "at least one of user or group must be specified")])
        subject = UserInfo(name=name, uid=spec.get("uid") or "", groups=tuple(spec.get("groups") or ()))
    else:
        if user is None:
            raise errors.forbidden_error("selfsubjectaccessreviews is forbidden: anonymous user")
        subject = user
    ra = spec.get("resourceAttributes")
    nra = spec.get("nonResourceAttributes")
    if (ra is None) == (nra is None):
        raise errors.invalid_error(kind, "authorization.k8s.io", "", [errors.invalid(
            "spec.resourceAttributes", ra, "exactly one of nonResourceAttributes or resourceAttributes must be "
            "specified")])
    if ra is not None:
        attrs = RequestAttributes(verb=ra.get("verb", ""), api_group=ra.get("group", ""),
                                  resource=ra.get("resource", ""), subresource=ra.get("subresource", ""),
                                  namespace=ra.get("namespace", ""), name=ra.get("name", ""), path="",
                                  is_resource_request=True, api_version=ra.get("version", ""))
    else:
        assert nra is not None  # exactly one of the two is set: checked above
        attrs = RequestAttributes(verb=nra.get("verb", ""), api_group="", resource="", subresource="",
                                  namespace="", name="", path=nra.get("path", ""), is_resource_request=False)
    if authorizer is None:
        allowed, reason = True, "no authorizer configured"
    else:
        allowed, reason = authorizer.authorize(subject, attrs)
    status: Obj = {"allowed": bool(allowed)}
    if reason:
        status["reason"] = reason
    out["status"] = status
    return out
