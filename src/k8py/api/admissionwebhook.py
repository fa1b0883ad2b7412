"""What the ValidatingAdmissionWebhook and MutatingAdmissionWebhook plugins
(``apiserver/admission/webhook.py``) decide without I/O, as kube's
``k8s.io/apiserver/pkg/admission/plugin/webhook`` packages:

- which webhooks a request goes to: the configurations' webhooks in kube's order (by
  configuration name, then by their place in it), their rules (``predicates/rules``: operation,
  group, version, resource with ``*``, ``*/*``, ``res/*``, ``*/sub``, and scope), the
  ``namespaceSelector`` (``predicates/namespace``: cluster-scoped objects other than Namespaces are
  never exempt; a Namespace is judged by its own labels) and the ``objectSelector``
  (``predicates/object``: the new or the old object's labels);
- the resources kube never sends to webhooks (``IsExemptAdmissionConfigurationResource``: the
  webhook and policy configurations themselves, so that a broken webhook can always be removed);
- the ``admission.k8s.io`` AdmissionReview a webhook is sent (``request.CreateAdmissionObjects``)
  and the checks of its answer (``VerifyAdmissionResponse``);
- kube's errors: a denial (``webhookerrors.ToStatusErr``: ``admission webhook "<name>" denied the
  request: <message>``, at least 400) and a failed call (``ErrCallingWebhook`` wrapped in a 500
  ``InternalError``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from k8py.api.errors import StatusError
from k8py.api.validation.meta import selector_is_empty, selector_matches

Obj = dict[str, Any]

ADMISSION_GROUP = "admission.k8s.io"
REVIEW_VERSIONS = ("v1", "v1beta1")  # the AdmissionReview versions this server speaks, preferred first
# kube's IsExemptAdmissionConfigurationResource
EXEMPT_RESOURCES = frozenset({
    "validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies",
    "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
})
# the kind of the object a subresource request carries, where it is not the parent's
SUBRESOURCE_KINDS: dict[str, tuple[str, str, str]] = {
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
}
# the options object a CONNECT request carries (the connecters' ``NewConnectOptions``: kube's
# request scope takes its kind from them), by parent resource and subresource
CONNECT_KINDS: dict[tuple[str, str, str], tuple[str, str, str]] = {
    ("", "pods", "exec"): ("", "v1", "PodExecOptions"),
    ("", "pods", "attach"): ("", "v1", "PodAttachOptions"),
    ("", "pods", "portforward"): ("", "v1", "PodPortForwardOptions"),
    ("", "pods", "proxy"): ("", "v1", "PodProxyOptions"),
    ("", "services", "proxy"): ("", "v1", "ServiceProxyOptions"),
    ("", "nodes", "proxy"): ("", "v1", "NodeProxyOptions"),
}
OPTIONS_KINDS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


def subresource_kind(group: str, resource: str, subresource: str) -> tuple[str, str, str] | None:
    """(group, version, kind) of the object a request on ``resource/subresource`` carries where it
    is not the parent's (a Scale, an Eviction, a CONNECT's options); None for the parent's own."""
    if not subresource:
        return None
    return CONNECT_KINDS.get((group, resource, subresource)) or SUBRESOURCE_KINDS.get(subresource)


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook of a configuration, with where it comes from."""

    configuration: str
    webhook: Obj
    mutating: bool

    @property
    def name(self) -> str:
        return str(self.webhook.get("name") or "")

    @property
    def failure_policy(self) -> str:
        return str(self.webhook.get("failurePolicy") or "Fail")

    @property
    def timeout(self) -> float:
        t = self.webhook.get("timeoutSeconds")
        return float(t) if isinstance(t, int) and not isinstance(t, bool) and t > 0 else 10.0

    @property
    def reinvoke_if_needed(self) -> bool:
        return self.webhook.get("reinvocationPolicy") == "IfNeeded"

    @property
    def review_version(self) -> str:
        """The first of the webhook's ``admissionReviewVersions`` this server speaks (kube's order)."""
        for v in self.webhook.get("admissionReviewVersions") or ():
            if v in REVIEW_VERSIONS:
                return str(v)
        return ""


def hooks_of(configurations: dict[str, Obj], mutating: bool) -> list[Hook]:
    """Every webhook of the configurations, by configuration name and then in their order."""
    out = []
    for name in sorted(configurations):
        for w in configurations[name].get("webhooks") or ():
            if isinstance(w, dict):
                out.append(Hook(name, w, mutating))
    return out


@dataclass(frozen=True, slots=True)
class Request:
    """The request as the matchers see it (kube's ``admission.Attributes``)."""

    operation: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str  # a Namespace's own name for requests on Namespaces

    @property
    def is_namespace(self) -> bool:
        return self.group == "" and self.resource == "namespaces"


def exempt(group: str, resource: str) -> bool:
    return group == "admissionregistration.k8s.io" and resource in EXEMPT_RESOURCES


def _one(values: Any, value: str) -> bool:
    return any(v == "*" or v == value for v in values or ())


def _resource_matches(resources: Any, resource: str, subresource: str) -> bool:
    for r in resources or ():
        res, _, sub = str(r).partition("/")
        if (res in ("*", resource)) and (sub in ("*", subresource)):
            return True
    return False


def _scope_matches(scope: Any, req: Request) -> bool:
    if scope in (None, "*"):
        return True
    if scope == "Namespaced":
        # a Namespace is cluster-scoped, whatever namespace its request names
        return not req.is_namespace and req.namespace != ""
    if scope == "Cluster":
        return req.is_namespace or req.namespace == ""
    return False


def rule_matches(rule: Obj, req: Request) -> bool:
    """kube's ``rules.Matcher.Matches``."""
    return (_one(rule.get("operations"), req.operation) and _one(rule.get("apiGroups"), req.group)
            and _one(rule.get("apiVersions"), req.version)
            and _resource_matches(rule.get("resources"), req.resource, req.subresource)
            and _scope_matches(rule.get("scope"), req))


def rules_match(hook: Hook, req: Request) -> bool:
    return any(isinstance(r, dict) and rule_matches(r, req) for r in hook.webhook.get("rules") or ())


def may_match_equivalent(hook: Hook, req: Request) -> bool:
    """Whether an equivalent resource (the same stored objects through another group/version)
    could match: ``matchPolicy`` is not Exact and a rule takes the operation and the resource's
    name, whatever the group and version. A cheap test before looking for equivalents."""
    if hook.webhook.get("matchPolicy") == "Exact":
        return False
    return any(isinstance(r, dict) and _one(r.get("operations"), req.operation)
               and _resource_matches(r.get("resources"), req.resource, req.subresource)
               for r in hook.webhook.get("rules") or ())


def needs_namespace_labels(hook: Hook, req: Request) -> bool:
    """Whether the ``namespaceSelector`` has to be judged against a namespace's labels: never for
    cluster-scoped objects other than Namespaces, nor for an empty selector."""
    if req.namespace == "" and not req.is_namespace:
        return False
    return not selector_is_empty(hook.webhook.get("namespaceSelector"))


def namespace_selector_matches(hook: Hook, namespace_labels: Any) -> bool:
    sel = hook.webhook.get("namespaceSelector")
    return selector_is_empty(sel) or selector_matches(sel, namespace_labels or {})


def object_selector_matches(hook: Hook, obj: Obj | None, old: Obj | None) -> bool:
    """kube's ``MatchObjectSelector``: an empty selector matches; else the new or the old
    object's labels must match (a request without objects matches nothing)."""
    sel = hook.webhook.get("objectSelector")
    if selector_is_empty(sel):
        return True
    # an object without metadata (a CONNECT's options) has no labels to match: kube's
    # meta.Accessor fails on it and the selector does not match
    return any(o is not None and isinstance(o.get("metadata"), dict)
               and selector_matches(sel, o["metadata"].get("labels") or {}) for o in (obj, old))


# --------------------------------------------------------------------------- the review


def review_request(hook: Hook, uid: str, req: Request, kind: tuple[str, str, str], name: str,
                   user: Any, obj: Obj | None, old: Obj | None, dry_run: bool,
                   options: Obj | None = None, *, request_kind: tuple[str, str, str] | None = None,
                   request: Request | None = None) -> Obj:
    """The AdmissionReview for ``hook`` (in the version it takes), kube's ``CreateAdmissionObjects``:
    ``req``/``kind`` are what the webhook's rules matched, ``request``/``request_kind`` what the
    client sent when that differs (``matchPolicy: Equivalent`` through another version)."""
    group, version, kind_name = kind
    gvk = {"group": group, "version": version, "kind": kind_name}
    gvr = {"group": req.group, "version": req.version, "resource": req.resource}
    r: Obj = {"uid": uid, "kind": gvk, "resource": gvr}
    if req.subresource:
        r["subResource"] = req.subresource
    rk, rr = request_kind or kind, request or req
    r["requestKind"] = {"group": rk[0], "version": rk[1], "kind": rk[2]}
    r["requestResource"] = {"group": rr.group, "version": rr.version, "resource": rr.resource}
    if req.subresource:
        r["requestSubResource"] = req.subresource
    if name:
        r["name"] = name
    if req.namespace:
        r["namespace"] = req.namespace
    r["operation"] = req.operation
    r["userInfo"] = user.to_api() if user is not None else {}
    if obj is not None:
        r["object"] = obj
    if old is not None:
        r["oldObject"] = old
    r["dryRun"] = dry_run
    if req.operation in OPTIONS_KINDS:
        opts = {"kind": OPTIONS_KINDS[req.operation], "apiVersion": "meta.k8s.io/v1", **(options or {})}
        if dry_run:
            opts["dryRun"] = ["All"]
        r["options"] = opts
    return {"kind": "AdmissionReview", "apiVersion": f"{ADMISSION_GROUP}/{hook.review_version or 'v1'}",
            "request": r}


@dataclass(frozen=True, slots=True)
class Result:
    """A webhook's verified answer."""

    allowed: bool
    status: Obj  # response.status (a metav1.Status), {} when absent
    patch: list[Any] | None  # a decoded JSONPatch, None without one
    warnings: tuple[str, ...]


class CallError(Exception):
    """Calling the webhook failed (kube's ``ErrCallingWebhook``): its failurePolicy decides."""


def verify_response(uid: str, hook: Hook, review: Any) -> Result:
    """kube's ``VerifyAdmissionResponse``: raises ``CallError`` with kube's wording."""
    if not isinstance(review, dict):
        raise CallError("the server responded with an AdmissionReview that is not an object")
    version = hook.review_version or "v1"
    resp = review.get("response")
    if not isinstance(resp, dict):
        raise CallError("webhook response was absent")
    if resp.get("uid") != uid:
        raise CallError(f'expected response.uid="{uid}", got "{resp.get("uid", "")}"')
    if version == "v1":
        got_group, _, got_version = str(review.get("apiVersion") or "").rpartition("/")
        if (got_group, got_version, review.get("kind")) != (ADMISSION_GROUP, "v1", "AdmissionReview"):
            raise CallError(f"expected webhook response of {ADMISSION_GROUP}/v1, Kind=AdmissionReview, got "
                            f"{review.get('apiVersion') or '/'}, Kind={review.get('kind') or ''}")
    patch_type = str(resp.get("patchType") or "")
    raw_patch = resp.get("patch") or ""
    if hook.mutating and raw_patch and not patch_type and version == "v1":
        raise CallError("webhook returned response.patch but not response.patchType")
    if hook.mutating and not raw_patch and patch_type and version == "v1":
        raise CallError("webhook returned response.patchType but not response.patch")
    if not hook.mutating and raw_patch:
        raise CallError("validating webhook may not return response.patch")
    if not hook.mutating and patch_type:
        raise CallError("validating webhook may not return response.patchType")
    patch = None
    if raw_patch:
        if patch_type not in ("JSONPatch", ""):
            raise CallError(f'unsupported patch type "{patch_type}"')
        try:
            patch = orjson.loads(base64.b64decode(str(raw_patch), validate=True))
        except (binascii.Error, ValueError) as e:
            raise CallError(f"the webhook's response.patch is not base64-encoded JSON: {e}") from None
    raw_status = resp.get("status")
    status: Obj = raw_status if isinstance(raw_status, dict) else {}
    warnings = tuple(str(w) for w in resp.get("warnings") or () if isinstance(w, str))
    return Result(resp.get("allowed") is True, status, patch, warnings)


def denied(hook_name: str, status: Obj) -> StatusError:
    """kube's ``ToStatusErr``: the webhook's Status, at least 400, its message prefixed."""
    denied_by = f'admission webhook "{hook_name}" denied the request'
    code = status.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else 400
    message, reason = str(status.get("message") or ""), str(status.get("reason") or "")
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    details = status.get("details") if isinstance(status.get("details"), dict) else None
    return StatusError(code, reason, text, details=details)


def call_failed(hook_name: str, reason: str) -> StatusError:
    """A call that failed under failurePolicy Fail: kube's ``NewInternalError(ErrCallingWebhook)``."""
    text = f'failed calling webhook "{hook_name}": {reason}'
    return StatusError(500, "InternalError", f"Internal error occurred: {text}", details={"causes": [{"message": text}]})


def dry_run_unsupported(hook_name: str) -> StatusError:
    """kube's ``NewDryRunUnsupportedErr``: a dry run meets a webhook with side effects."""
    return StatusError(400, "BadRequest", f'admission webhook "{hook_name}" does not support dry run')


def supports_dry_run(hook: Hook) -> bool:
    return hook.webhook.get("sideEffects") in ("None", "NoneOnDryRun")
