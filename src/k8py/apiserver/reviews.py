"""Review kinds: questions the API server answers on create and never stores.

- authentication.k8s.io/v1 SelfSubjectReview: who am I (``kubectl auth whoami``);
- authentication.k8s.io/v1 TokenReview: who does this bearer token prove to be, for these
  audiences (kube's ``tokenreview`` REST): the API server's token authenticators (static and
  bootstrap tokens, service-account JWTs) answer ``status.authenticated``, ``user``,
  ``audiences`` and, for a token that proves nothing, ``error``;
- authorization.k8s.io/v1 SelfSubjectAccessReview, SubjectAccessReview and (namespaced)
  LocalSubjectAccessReview: may this user do this (``kubectl auth can-i``), answered by the same
  authorizer that guards requests;
- authorization.k8s.io/v1 SelfSubjectRulesReview: what may I do in this namespace
  (``kubectl auth can-i --list``), from the authorizer's rule resolver (``rules_for``, RBAC's),
  as kube's: every rule bound to the user, resource rules and non-resource rules apart, an
  ``evaluationError`` when a binding names a role that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k8py.api import errors
from k8py.apiserver.authn import UserInfo
from k8py.apiserver.authz import RequestAttributes

if TYPE_CHECKING:
    from k8py.apiserver.authz import AuthorizerLike

Obj = dict[str, Any]
AUTHZ_GROUP = "authorization.k8s.io"


def _user_info(u: UserInfo) -> Obj:
    return u.to_api()


def _subject(kind: str, spec: Obj) -> UserInfo:
    """The user a (Local)SubjectAccessReview asks about, as its spec names them."""
    name = spec.get("user") or ""
    if not name and not spec.get("groups"):
        raise errors.invalid_error(kind, AUTHZ_GROUP, "", [
            errors.invalid("spec.user", "", "at least one of user or group must be specified")])
    extra: Obj = spec["extra"] if isinstance(spec.get("extra"), dict) else {}
    return UserInfo(name=name, uid=spec.get("uid") or "", groups=tuple(spec.get("groups") or ()),
                    extra={str(k): tuple(v or ()) for k, v in extra.items()})


def _attributes(kind: str, spec: Obj, namespace: str) -> RequestAttributes:
    ra: Obj | None = spec.get("resourceAttributes")
    nra: Obj | None = spec.get("nonResourceAttributes")
    if ra is not None and nra is not None:
        raise errors.invalid_error(kind, AUTHZ_GROUP, "", [errors.invalid(
            "spec.nonResourceAttributes", nra, "cannot be specified in combination with resourceAttributes")])
    if ra is None and nra is None:
        raise errors.invalid_error(kind, AUTHZ_GROUP, "", [errors.invalid(
            "spec.resourceAttributes", None, "exactly one of nonResourceAttributes or resourceAttributes must be "
            "specified")])
    if kind == "LocalSubjectAccessReview":
        if nra is not None:
            raise errors.invalid_error(kind, AUTHZ_GROUP, "", [errors.invalid(
                "spec.nonResourceAttributes", nra, "disallowed on this kind of request")])
        if ra is not None and (ra.get("namespace") or "") != namespace:
            raise errors.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
    if ra is not None:
        return RequestAttributes(verb=ra.get("verb", ""), api_group=ra.get("group", ""),
                                 resource=ra.get("resource", ""), subresource=ra.get("subresource", ""),
                                 namespace=ra.get("namespace", ""), name=ra.get("name", ""),
                                 is_resource_request=True, api_version=ra.get("version", ""))
    assert nra is not None  # one of the two is set: checked above
    return RequestAttributes(verb=nra.get("verb", ""), path=nra.get("path", ""), is_resource_request=False)


def _rules_review(body: Obj, user: UserInfo, authorizer: AuthorizerLike | None) -> Obj:
    namespace = (body.get("spec") or {}).get("namespace") or ""
    if not namespace:
        raise errors.bad_request("no namespace on request")
    resolve = getattr(authorizer, "rules_for", None)
    if resolve is None:
        return {"resourceRules": [], "nonResourceRules": [], "incomplete": True,
                "evaluationError": "the authorizer cannot list rules"}
    rules, errs = resolve(user, namespace)
    resource_rules: list[Obj] = []
    non_resource_rules: list[Obj] = []
    for r in rules:
        if r.resources:
            rr: Obj = {"verbs": list(r.verbs)}
            if r.api_groups:
                rr["apiGroups"] = list(r.api_groups)
            rr["resources"] = list(r.resources)
            if r.resource_names:
                rr["resourceNames"] = list(r.resource_names)
            resource_rules.append(rr)
        if r.non_resource_urls:
            non_resource_rules.append({"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)})
    # kube's RBAC rule resolver reports a binding to a missing role as an evaluation error but
    # not as incomplete (its RulesFor returns incomplete=false with the error); the Node
    # authorizer says a node's rules are incomplete (they follow its pods)
    incomplete = getattr(authorizer, "incomplete_for", None)
    status: Obj = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                   "incomplete": bool(incomplete is not None and incomplete(user))}
    if errs:
        status["evaluationError"] = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return status


async def token_review(body: Obj, authenticator: Any, sa_tokens: Any, namespace: str = "") -> Obj:
    """A TokenReview's answer. ``authenticator`` is the API server's (``authenticate_token``);
    with a test's authenticator that has none, service-account tokens are still reviewed."""
    if namespace:
        raise errors.bad_request(f"namespace is not allowed on this type: {namespace}")
    spec = body.get("spec") or {}
    token = spec.get("token") or ""
    if not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    audiences = tuple(str(a) for a in spec.get("audiences") or ())
    user: UserInfo | None = None
    auds: tuple[str, ...] = ()
    error = ""
    if hasattr(authenticator, "authenticate_token"):
        user, auds, error = await authenticator.authenticate_token(token, audiences)
    elif sa_tokens is not None:
        from k8py.satoken import TokenError

        try:
            got = await sa_tokens.authenticate(token, audiences)
        except TokenError as e:
            error = str(e)
        else:
            if got is not None:
                user, auds = got.user, got.audiences
    out = dict(body)
    out["metadata"] = {**(body.get("metadata") or {})}
    out["metadata"].setdefault("creationTimestamp", None)
    # as kube's JSON: ``authenticated`` left out when false, ``user`` always there
    status: Obj
    if user is not None:
        status = {"authenticated": True, "user": _user_info(user), "audiences": list(auds)}
    else:
        status = {"user": {}}
        if error:
            # as kube-apiserver's token authenticators aggregate their errors
            status["error"] = f"[invalid bearer token, {error}]"
    out["status"] = status
    return out


def answer(kind: str, body: Obj, user: UserInfo | None, authorizer: AuthorizerLike | None,
           namespace: str = "") -> Obj:
    out = dict(body)
    out.setdefault("metadata", {})
    out["metadata"].setdefault("creationTimestamp", None)
    if kind == "LocalSubjectAccessReview":
        out["metadata"]["namespace"] = namespace
    if kind in ("SelfSubjectReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview") and user is None:
        raise errors.forbidden_error(f"{kind.lower()}s is forbidden: anonymous user")
    if kind == "SelfSubjectReview":
        assert user is not None
        out["status"] = {"userInfo": _user_info(user)}
        return out
    if kind == "SelfSubjectRulesReview":
        assert user is not None
        out["status"] = _rules_review(body, user, authorizer)
        return out
    spec = body.get("spec") or {}
    if kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
        subject = _subject(kind, spec)
    else:
        assert user is not None
        subject = user
    attrs = _attributes(kind, spec, namespace)
    if authorizer is None:
        allowed, reason = True, "no authorizer configured"
    else:
        allowed, reason = authorizer.authorize(subject, attrs)
    status: Obj = {"allowed": bool(allowed)}
    if reason:
        status["reason"] = reason
    out["status"] = status
    return out
