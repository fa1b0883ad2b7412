"""admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration and
MutatingWebhookConfiguration, as kube's ``ValidateValidatingWebhookConfiguration`` /
``ValidateMutatingWebhookConfiguration`` (``pkg/apis/admissionregistration/validation``) and
the webhook client's ``ValidateWebhookURL`` / ``ValidateWebhookService``
(``k8s.io/apiserver/pkg/util/webhook``).

An update is held to the create rules except where the old object already broke one of the
rules kube relaxed later (side effects, admission review versions, unique names, label values in
selectors): such an object stays updatable, as in kube. ``matchConditions`` (CEL) is refused:
k8py has no CEL, and a condition stored but never evaluated would call the webhook for requests
its author meant to exclude.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from k8py.api.errors import duplicate, invalid, not_supported, required
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    d_,
    go_strings,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_port_num,
    l_,
    name_is_dns_subdomain,
    s_,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)

__all__ = [
    "validate_mutating_webhook_configuration",
    "validate_mutating_webhook_configuration_update",
    "validate_validating_webhook_configuration",
    "validate_validating_webhook_configuration_update",
]

ACCEPTED_REVIEW_VERSIONS = ("v1", "v1beta1")
FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
SIDE_EFFECTS_ALL = ("None", "NoneOnDryRun", "Some", "Unknown")
SIDE_EFFECTS_NONE = ("None", "NoneOnDryRun")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
SCOPES = ("*", "Cluster", "Namespaced")
CEL_UNSUPPORTED = ("CEL match conditions are not supported by k8py; select requests with rules, namespaceSelector "
                   "and objectSelector")


def is_fully_qualified_name(path: str, name: str) -> Errs:
    """kube's ``IsFullyQualifiedName``: a DNS subdomain of at least three segments."""
    if not name:
        return [required(path)]
    bad = is_dns1123_subdomain(name)
    if bad:
        return [invalid(path, name, ",".join(bad))]
    if len(name.split(".")) < 3:
        return [invalid(path, name, "should be a domain with at least three segments separated by dots")]
    return []


def validate_webhook_url(path: str, url: str) -> Errs:
    """kube's ``ValidateWebhookURL`` with https forced."""
    form = "; desired format: https://host[/path]"
    try:
        u = urlsplit(url)
        host = u.netloc.rpartition("@")[2]
    except ValueError as e:
        return [required(path, f"url must be a valid URL: {e}{form}")]
    errs: Errs = []
    if u.scheme != "https":
        errs.append(invalid(path, u.scheme, "'https' is the only allowed URL scheme" + form))
    if not host:
        errs.append(invalid(path, host, "host must be specified" + form))
    if "@" in u.netloc:
        errs.append(invalid(path, u.netloc.rpartition("@")[0], "user information is not permitted in the URL"))
    if u.fragment:
        errs.append(invalid(path, u.fragment, "fragments are not permitted in the URL"))
    if u.query:
        errs.append(invalid(path, u.query, "query parameters are not permitted in the URL"))
    return errs


def validate_webhook_service(path: str, svc: dict[str, Any]) -> Errs:
    """kube's ``ValidateWebhookService``: name, namespace, port, and a path of DNS-subdomain segments."""
    errs: Errs = []
    if not s_(svc.get("name")):
        errs.append(required(f"{path}.name", "service name is required"))
    if not s_(svc.get("namespace")):
        errs.append(required(f"{path}.namespace", "service namespace is required"))
    port = svc.get("port", 443)
    if not isinstance(port, int) or isinstance(port, bool):
        errs.append(invalid(f"{path}.port", port, "port is not valid: must be an integer"))
    else:
        bad = is_valid_port_num(port)
        if bad:
            errs.append(invalid(f"{path}.port", port, "port is not valid: " + ", ".join(bad)))
    url_path = svc.get("path")
    if url_path is None or url_path in ("", "/"):
        return errs
    url_path = s_(url_path)
    if url_path == "//":
        return [*errs, invalid(f"{path}.path", url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        errs.append(invalid(f"{path}.path", url_path, "must start with a '/'"))
    check = url_path[1:]
    check = check.removesuffix("/")
    for i, step in enumerate(check.split("/")):
        if not step:
            errs.append(invalid(f"{path}.path", url_path, f"segment[{i}] may not be empty"))
            continue
        errs += [invalid(f"{path}.path", url_path, f"segment[{i}]: {m}") for m in is_dns1123_subdomain(step)]
    return errs


def _strings(x: Any) -> list[str]:
    return [s_(v) for v in l_(x)]


def validate_resources(resources: list[str], path: str) -> Errs:
    """kube's ``validateResources``: ``*``, ``*/*``, ``res/*`` and ``*/sub`` without overlaps."""
    errs: Errs = []
    if not resources:
        errs.append(required(path))
    with_wild_sub: set[str] = set()
    sub_with_wild_res: set[str] = set()
    double = single = plain = False
    for i, rs in enumerate(resources):
        if rs == "":
            errs.append(required(f"{path}[{i}]"))
            continue
        if rs == "*/*":
            double = True
        if rs == "*":
            single = True
        if "/" not in rs:
            plain = rs != "*"
            continue
        res, sub = rs.split("/", 1)
        if res in with_wild_sub:
            errs.append(invalid(f"{path}[{i}]", rs, f"if '{res}/*' is present, must not specify {rs}"))
        if sub in sub_with_wild_res:
            errs.append(invalid(f"{path}[{i}]", rs, f"if '*/{sub}' is present, must not specify {rs}"))
        if sub == "*":
            with_wild_sub.add(res)
        if res == "*":
            sub_with_wild_res.add(sub)
    if len(resources) > 1 and double:
        errs.append(invalid(path, GoRaw(go_strings(resources)), "if '*/*' is present, must not specify other resources"))
    if single and plain:
        errs.append(invalid(path, GoRaw(go_strings(resources)), "if '*' is present, must not specify other resources without "
                                             "subresources"))
    return errs


def validate_rule_with_operations(rule: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    ops = _strings(rule.get("operations"))
    if not ops:
        errs.append(required(f"{path}.operations"))
    if len(ops) > 1 and "*" in ops:
        errs.append(invalid(f"{path}.operations", GoRaw(go_strings(ops).replace("[]string", "[]admissionregistration.OperationType", 1)), "if '*' is present, must not specify other operations"))
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            errs.append(not_supported(f"{path}.operations[{i}]", op, OPERATIONS))
    groups = _strings(rule.get("apiGroups"))
    if not groups:
        errs.append(required(f"{path}.apiGroups"))
    if len(groups) > 1 and "*" in groups:
        errs.append(invalid(f"{path}.apiGroups", GoRaw(go_strings(groups)), "if '*' is present, must not specify other API groups"))
    versions = _strings(rule.get("apiVersions"))
    if not versions:
        errs.append(required(f"{path}.apiVersions"))
    if len(versions) > 1 and "*" in versions:
        errs.append(invalid(f"{path}.apiVersions", GoRaw(go_strings(versions)), "if '*' is present, must not specify other API versions"))
    errs += [required(f"{path}.apiVersions[{i}]") for i, v in enumerate(versions) if v == ""]
    errs += validate_resources(_strings(rule.get("resources")), f"{path}.resources")
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        errs.append(not_supported(f"{path}.scope", scope, SCOPES))
    return errs


def validate_review_versions(versions: list[str], require_known: bool, path: str) -> Errs:
    if not versions:
        return [required(path, f"must specify one of {', '.join(ACCEPTED_REVIEW_VERSIONS)}")]
    errs: Errs = []
    seen: set[str] = set()
    known = False
    for i, v in enumerate(versions):
        if v in seen:
            errs.append(invalid(f"{path}[{i}]", v, "duplicate version"))
            continue
        seen.add(v)
        errs += [invalid(f"{path}[{i}]", v, m) for m in is_dns1035_label(v)]
        known = known or v in ACCEPTED_REVIEW_VERSIONS
    if require_known and not known:
        errs.append(invalid(path, GoRaw(go_strings(versions)), f"must include at least one of {', '.join(ACCEPTED_REVIEW_VERSIONS)}"))
    return errs


class _Options:
    """kube's ``validationOptions``: what an update of an old object may keep."""

    __slots__ = ("allow_invalid_label_values", "require_known_review_version", "require_no_side_effects",
                 "require_unique_names")

    def __init__(self, old_hooks: list[dict[str, Any]] | None = None) -> None:
        if old_hooks is None:
            self.require_no_side_effects = self.require_known_review_version = self.require_unique_names = True
            self.allow_invalid_label_values = False
            return
        self.require_no_side_effects = all(h.get("sideEffects") in SIDE_EFFECTS_NONE for h in old_hooks)
        self.require_known_review_version = all(
            not h.get("admissionReviewVersions")
            or any(v in ACCEPTED_REVIEW_VERSIONS for v in _strings(h.get("admissionReviewVersions")))
            for h in old_hooks)
        names = [s_(h.get("name")) for h in old_hooks]
        self.require_unique_names = len(names) == len(set(names))
        self.allow_invalid_label_values = any(
            validate_label_selector(h.get(k), "") for h in old_hooks for k in ("namespaceSelector", "objectSelector")
            if h.get(k) is not None)


def _validate_webhook(hook: dict[str, Any], mutating: bool, opts: _Options, path: str) -> Errs:
    errs = is_fully_qualified_name(f"{path}.name", s_(hook.get("name")))
    for i, rule in enumerate(l_(hook.get("rules"))):
        errs += validate_rule_with_operations(d_(rule), f"{path}.rules[{i}]")
    fp = hook.get("failurePolicy")
    if fp is not None and fp not in FAILURE_POLICIES:
        errs.append(not_supported(f"{path}.failurePolicy", fp, FAILURE_POLICIES))
    mp = hook.get("matchPolicy")
    if mp is not None and mp not in MATCH_POLICIES:
        errs.append(not_supported(f"{path}.matchPolicy", mp, MATCH_POLICIES))
    allowed = SIDE_EFFECTS_NONE if opts.require_no_side_effects else SIDE_EFFECTS_ALL
    se = hook.get("sideEffects")
    if se is None:
        errs.append(required(f"{path}.sideEffects", f"must specify one of {', '.join(allowed)}"))
    elif se not in allowed:
        errs.append(not_supported(f"{path}.sideEffects", se, allowed))
    ts = hook.get("timeoutSeconds")
    if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool) or ts > 30 or ts < 1):
        errs.append(invalid(f"{path}.timeoutSeconds", ts, "the timeout value must be between 1 and 30 seconds"))
    for k in ("namespaceSelector", "objectSelector"):
        if hook.get(k) is not None:
            errs += validate_label_selector(hook[k], f"{path}.{k}", opts.allow_invalid_label_values)
    if mutating:
        rp = hook.get("reinvocationPolicy")
        if rp is not None and rp not in REINVOCATION_POLICIES:
            errs.append(not_supported(f"{path}.reinvocationPolicy", rp, REINVOCATION_POLICIES))
    cc = d_(hook.get("clientConfig"))
    url, svc = cc.get("url"), cc.get("service")
    if (url is None) == (svc is None):
        errs.append(required(f"{path}.clientConfig", "exactly one of url or service is required"))
    elif url is not None:
        errs += validate_webhook_url(f"{path}.clientConfig.url", s_(url))
    else:
        errs += validate_webhook_service(f"{path}.clientConfig.service", d_(svc))
    if l_(hook.get("matchConditions")):
        errs.append(invalid(f"{path}.matchConditions", "CEL expressions", CEL_UNSUPPORTED))
    return errs


def _validate(obj: dict[str, Any], mutating: bool, opts: _Options) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    names: set[str] = set()
    for i, raw in enumerate(l_(obj.get("webhooks"))):
        hook = d_(raw)
        path = f"webhooks[{i}]"
        errs += _validate_webhook(hook, mutating, opts, path)
        errs += validate_review_versions(_strings(hook.get("admissionReviewVersions")),
                                         opts.require_known_review_version, f"{path}.admissionReviewVersions")
        name = s_(hook.get("name"))
        if opts.require_unique_names and name:
            if name in names:
                errs.append(duplicate(f"{path}.name", name))
            names.add(name)
    return errs


def _update(new: dict[str, Any], old: dict[str, Any], mutating: bool) -> Errs:
    opts = _Options([d_(h) for h in l_(old.get("webhooks"))])
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _validate(new, mutating, opts)


def validate_validating_webhook_configuration(obj: dict[str, Any]) -> Errs:
    return _validate(obj, False, _Options())


def validate_validating_webhook_configuration_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, False)


def validate_mutating_webhook_configuration(obj: dict[str, Any]) -> Errs:
    return _validate(obj, True, _Options())


def validate_mutating_webhook_configuration_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, True)

