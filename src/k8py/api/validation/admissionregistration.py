"""admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration and
MutatingWebhookConfiguration, as kube's ``ValidateValidatingWebhookConfiguration`` /
``ValidateMutatingWebhookConfiguration`` (``pkg/apis/admissionregistration/validation``) and
the webhook client's ``ValidateWebhookURL`` / ``ValidateWebhookService``
(``k8s.io/apiserver/pkg/util/webhook``).

An update is held to the create rules except where the old object already broke one of the
rules kube relaxed later (side effects, admission review versions, unique names, label values in
selectors): such an object stays updatable, as in kube. ``matchConditions`` are compiled as kube
does (``compilation failed: ERROR: ...``); an update that leaves them as they were does not
compile them again (kube's ``ignoreMatchConditions``).

ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding as kube's
``ValidateValidatingAdmissionPolicy`` / ``...Binding``: every expression (match conditions,
variables, validations, messageExpressions, audit annotations) is compiled with the variables it
may use (``params`` only with a ``paramKind``), through :mod:`k8py.api.cel`. MutatingAdmissionPolicy
and its binding likewise (``ValidateMutatingAdmissionPolicy``): mutations' expressions through
:mod:`k8py.api.mutatingpolicy`, and only CREATE, UPDATE and CONNECT may be matched.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from k8py.api import admissionpolicy as ap
from k8py.api import cel
from k8py.api import mutatingpolicy as mp
from k8py.api.errors import duplicate, forbidden, invalid, not_supported, required, too_many
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    d_,
    go_strings,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_path_segment_name,
    is_valid_port_num,
    l_,
    name_is_dns_subdomain,
    s_,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)

__all__ = [
    "validate_mutating_admission_policy",
    "validate_mutating_admission_policy_binding",
    "validate_mutating_admission_policy_binding_update",
    "validate_mutating_admission_policy_update",
    "validate_mutating_webhook_configuration",
    "validate_mutating_webhook_configuration_update",
    "validate_validating_admission_policy",
    "validate_validating_admission_policy_binding",
    "validate_validating_admission_policy_binding_update",
    "validate_validating_admission_policy_status",
    "validate_validating_admission_policy_update",
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
VALIDATION_ACTIONS = ("Audit", "Deny", "Warn")
PARAMETER_NOT_FOUND_ACTIONS = ("Deny", "Allow")
POLICY_REASONS = ("Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized")
MAX_AUDIT_ANNOTATIONS = 20
MAX_VALUE_EXPRESSION_BYTES = 5 * 1024
_CEL_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                           "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"})
_CEL_IDENT = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")


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

    __slots__ = ("allow_invalid_label_values", "ignore_match_conditions", "require_known_review_version",
                 "require_no_side_effects", "require_unique_names")

    def __init__(self, old_hooks: list[dict[str, Any]] | None = None,
                 new_hooks: list[dict[str, Any]] | None = None) -> None:
        # kube's ignoreMatchConditions: an update that keeps every webhook's conditions as they
        # were does not compile them again
        self.ignore_match_conditions = (
            old_hooks is not None and new_hooks is not None and len(old_hooks) == len(new_hooks)
            and all(n.get("matchConditions") == o.get("matchConditions") for n, o in zip(new_hooks, old_hooks)))
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
    if not opts.ignore_match_conditions:
        errs += validate_match_conditions(hook.get("matchConditions"), ap.MATCH_CONDITION_VARS,
                                          f"{path}.matchConditions")
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
    opts = _Options([d_(h) for h in l_(old.get("webhooks"))], [d_(h) for h in l_(new.get("webhooks"))])
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _validate(new, mutating, opts)


def validate_validating_webhook_configuration(obj: dict[str, Any]) -> Errs:
    return _validate(obj, False, _Options())


def validate_validating_webhook_configuration_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, False)


def validate_mutating_webhook_configuration(obj: dict[str, Any]) -> Errs:
    return _validate(obj, True, _Options())


def validate_mutating_webhook_configuration_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return _update(new, old, True)



# --------------------------------------------------------------------------- CEL expressions


def validate_qualified_name(name: str, path: str) -> Errs:
    return [invalid(path, name, m) for m in is_qualified_name(name)]


def _cel(path: str, expr: str, names: tuple[str, ...], returns: tuple[str, ...], known: set[str] | None = None,
         shown: str | None = None) -> Errs:
    """Compile one expression; kube's Invalid with the compiler's detail when it does not."""
    _, err = cel.compile_admission(expr, names, returns)
    if not err:
        err = ap.undefined_field(expr, known)
    return [invalid(path, expr if shown is None else shown, err)] if err else []


def validate_match_conditions(conds: Any, names: tuple[str, ...], path: str) -> Errs:
    """kube's ``validateMatchConditions``: at most 64, names unique qualified names, expressions
    that compile to a bool."""
    items = l_(conds)
    errs: Errs = []
    if len(items) > ap.MAX_MATCH_CONDITIONS:
        errs.append(too_many(path, len(items), ap.MAX_MATCH_CONDITIONS))
    seen: set[str] = set()
    for i, raw in enumerate(items):
        c = d_(raw)
        p = f"{path}[{i}]"
        expr = s_(c.get("expression")).strip()
        if not expr:
            errs.append(required(f"{p}.expression"))
        else:
            errs += _cel(f"{p}.expression", expr, names, ("bool",))
        name = s_(c.get("name"))
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            errs += validate_qualified_name(name, f"{p}.name")
            if name in seen:
                errs.append(duplicate(f"{p}.name", name))
            seen.add(name)
    return errs


def _parse_group_version(gv: str) -> tuple[str, str] | None:
    if gv in ("", "/"):
        return "", ""
    n = gv.count("/")
    if n == 0:
        return "", gv
    if n == 1:
        g, v = gv.split("/")
        return g, v
    return None


def validate_param_kind(pk: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    api_version = s_(pk.get("apiVersion"))
    if not api_version:
        errs.append(required(f"{path}.apiVersion"))
    else:
        gv = _parse_group_version(api_version)
        if gv is None:
            errs.append(invalid(f"{path}.apiVersion", api_version, f"unexpected GroupVersion string: {api_version}"))
        else:
            group, version = gv
            if group and is_dns1123_subdomain(group):
                errs.append(invalid(f"{path}.apiVersion", group, ",".join(is_dns1123_subdomain(group))))
            if not version:
                errs.append(invalid(f"{path}.apiVersion", api_version, "version must be specified"))
            elif is_dns1035_label(version):
                errs.append(invalid(f"{path}.apiVersion", version, ",".join(is_dns1035_label(version))))
    kind = s_(pk.get("kind"))
    if not kind:
        errs.append(required(f"{path}.kind"))
    elif is_dns1035_label(kind.lower()):
        errs.append(invalid(f"{path}.kind", kind, "may have mixed case, but should otherwise match: "
                            + ",".join(is_dns1035_label(kind.lower()))))
    return errs


def validate_match_resources(mr: Any, path: str) -> Errs:
    """kube's ``validateMatchResources`` (selectors validated strictly)."""
    if mr is None:
        return []
    m = d_(mr)
    errs: Errs = []
    mp = m.get("matchPolicy")
    if mp is None:
        errs.append(required(f"{path}.matchPolicy"))
    elif mp not in MATCH_POLICIES:
        errs.append(not_supported(f"{path}.matchPolicy", mp, MATCH_POLICIES))
    for k in ("namespaceSelector", "objectSelector"):
        if m.get(k) is None:
            errs.append(required(f"{path}.{k}"))
        else:
            errs += validate_label_selector(m[k], f"{path}.{k}")
    for k in ("resourceRules", "excludeResourceRules"):
        for i, raw in enumerate(l_(m.get(k))):
            rule = d_(raw)
            p = f"{path}.{k}[{i}]"
            seen: set[str] = set()
            for j, rn in enumerate(_strings(rule.get("resourceNames"))):
                errs += [invalid(f"{p}.resourceNames[{j}]", rn, msg) for msg in is_valid_path_segment_name(rn)]
                if rn in seen:
                    errs.append(duplicate(f"{p}.resourceNames[{j}]", rn))
                seen.add(rn)
            errs += validate_rule_with_operations(rule, p)
    return errs


def _has_newlines(s: str) -> bool:
    return "\n" in s or "\r" in s


def _validate_variables(spec: dict[str, Any], names: tuple[str, ...], path: str) -> tuple[Errs, set[str]]:
    """A policy's ``variables`` (kube's ``validateVariable``); the errors and the names declared."""
    errs: Errs = []
    known: set[str] = set()
    for i, raw in enumerate(l_(spec.get("variables"))):
        v = d_(raw)
        p = f"{path}[{i}]"
        name = s_(v.get("name"))
        if not name.strip():
            errs.append(required(f"{p}.name", "name is not specified"))
        elif not _CEL_IDENT.match(name) or name in _CEL_RESERVED:
            errs.append(invalid(f"{p}.name", name, "name is not a valid CEL identifier"))
        expr = s_(v.get("expression"))
        if not expr.strip():
            errs.append(required(f"{p}.expression", "expression is not specified"))
        else:
            errs += _cel(f"{p}.expression", expr, names, (), known)
        known.add(name)
    return errs, known


def _validate_policy_head(spec: dict[str, Any], old_spec: dict[str, Any] | None, path: str,
                          mutating: bool) -> tuple[Errs, tuple[str, ...], set[str]]:
    """What a validating and a mutating policy's spec share (failurePolicy, paramKind,
    matchConstraints, matchConditions, variables): the errors, the expressions' variable names
    and the names of the declared variables."""
    errs: Errs = []
    fp = spec.get("failurePolicy")
    if fp is None:
        errs.append(required(f"{path}.failurePolicy"))
    elif fp not in FAILURE_POLICIES:
        errs.append(not_supported(f"{path}.failurePolicy", fp, FAILURE_POLICIES))
    pk = spec.get("paramKind")
    if pk is not None:
        errs += validate_param_kind(d_(pk), f"{path}.paramKind")
    names = ap.policy_names(pk is not None)
    mc = spec.get("matchConstraints")
    if mc is None:
        errs.append(required(f"{path}.matchConstraints"))
    else:
        errs += validate_match_resources(mc, f"{path}.matchConstraints")
        if not l_(d_(mc).get("resourceRules")):
            # at least one resource rule gives the expressions their types
            errs.append(required(f"{path}.matchConstraints.resourceRules"))
        if mutating:
            errs += _mutable_operations(mc, f"{path}.matchConstraints.resourceRules.operations")
    if old_spec is None or spec.get("matchConditions") != old_spec.get("matchConditions"):
        errs += validate_match_conditions(spec.get("matchConditions"), ap.condition_names(names),
                                          f"{path}.matchConditions")
    var_errs, known = _validate_variables(spec, names, f"{path}.variables")
    return errs + var_errs, names, known


def _validate_policy_spec(meta: dict[str, Any], spec: dict[str, Any], old_spec: dict[str, Any] | None) -> Errs:
    path = "spec"
    errs, names, known = _validate_policy_head(spec, old_spec, path, mutating=False)
    validations = l_(spec.get("validations"))
    annotations = l_(spec.get("auditAnnotations"))
    if not validations and not annotations:
        msg = "validations or auditAnnotations must contain at least one item"
        return [*errs, required(f"{path}.validations", msg), required(f"{path}.auditAnnotations", msg)]
    for i, raw in enumerate(validations):
        v = d_(raw)
        p = f"{path}.validations[{i}]"
        expr = s_(v.get("expression"))
        if not expr.strip():
            errs.append(required(f"{p}.expression", "expression is not specified"))
        else:
            errs += _cel(f"{p}.expression", expr, names, ("bool",), known)
        mexpr = s_(v.get("messageExpression"))
        if mexpr and not mexpr.strip():
            errs.append(invalid(f"{p}.messageExpression", mexpr, "must be non-empty if specified"))
        elif mexpr.strip():
            errs += _cel(f"{p}.messageExpression", mexpr, ap.message_names(names), ("string",), known)
        msg = s_(v.get("message"))
        if msg and not msg.strip():
            errs.append(invalid(f"{p}.message", msg, "message must be non-empty if specified"))
        elif _has_newlines(msg.strip()):
            errs.append(invalid(f"{p}.message", msg, "message must not contain line breaks"))
        reason = v.get("reason")
        if reason is not None and reason not in POLICY_REASONS:
            errs.append(not_supported(f"{p}.reason", reason, POLICY_REASONS))
    if len(annotations) > MAX_AUDIT_ANNOTATIONS:
        errs.append(invalid(f"{path}.auditAnnotations", GoRaw("[...]"),
                            f"must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"))
    keys: set[str] = set()
    policy_name = s_(meta.get("name"))
    for i, raw in enumerate(annotations):
        a = d_(raw)
        p = f"{path}.auditAnnotations[{i}]"
        key = s_(a.get("key"))
        if policy_name:
            errs += validate_qualified_name(f"{policy_name}/{key}", f"{p}.key")
        else:
            errs.append(invalid(f"{p}.key", key, "requires metadata.name be non-empty"))
        expr = s_(a.get("valueExpression"))
        if not expr.strip():
            errs.append(required(f"{p}.valueExpression", "valueExpression is not specified"))
        elif len(expr.strip().encode()) > MAX_VALUE_EXPRESSION_BYTES:
            errs.append(required(f"{p}.valueExpression", f"must not exceed {MAX_VALUE_EXPRESSION_BYTES} bytes in length"))
        else:
            errs += _cel(f"{p}.valueExpression", expr.strip(), names, ("string", "null_type"), known, shown=expr)
        if key in keys:
            errs.append(duplicate(f"{p}.key", key))
        keys.add(key)
    return errs


def validate_validating_admission_policy(obj: dict[str, Any]) -> Errs:
    meta = d_(obj.get("metadata"))
    return (validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
            + _validate_policy_spec(meta, d_(obj.get("spec")), None))


def validate_validating_admission_policy_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    meta = d_(new.get("metadata"))
    return (validate_object_meta_update(new.get("metadata"), old.get("metadata"))
            + validate_object_meta(new.get("metadata"), False, name_is_dns_subdomain)
            + _validate_policy_spec(meta, d_(new.get("spec")), d_(old.get("spec"))))


def validate_validating_admission_policy_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    tc = d_(d_(new.get("status")).get("typeChecking"))
    for i, raw in enumerate(l_(tc.get("expressionWarnings"))):
        w = d_(raw)
        p = f"status.typeChecking.expressionWarnings[{i}]"
        if not s_(w.get("warning")):
            errs.append(required(f"{p}.warning"))
        if not s_(w.get("fieldRef")).strip():
            errs.append(required(f"{p}.fieldRef"))
    return errs


def validate_param_ref(pr: Any, path: str) -> Errs:
    if pr is None:
        return []
    p = d_(pr)
    errs: Errs = []
    name, sel = s_(p.get("name")), p.get("selector")
    if name:
        errs += [invalid(f"{path}.name", name, m) for m in is_valid_path_segment_name(name)]
        if sel is not None:
            errs.append(forbidden(f"{path}.name", "name and selector are mutually exclusive"))
    if sel is not None:
        errs += validate_label_selector(sel, f"{path}.selector")
        if name:
            errs.append(forbidden(f"{path}.selector", "name and selector are mutually exclusive"))
    if not name and sel is None:
        errs.append(required(path, "one of name or selector must be specified"))
    action = p.get("parameterNotFoundAction")
    if not action:
        errs.append(required(f"{path}.parameterNotFoundAction"))
    elif action not in PARAMETER_NOT_FOUND_ACTIONS:
        errs.append(not_supported(f"{path}.parameterNotFoundAction", action, PARAMETER_NOT_FOUND_ACTIONS))
    return errs


def validate_validation_actions(actions: Any, path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    items = _strings(actions)
    for i, a in enumerate(items):
        if a not in VALIDATION_ACTIONS:
            errs.append(not_supported(f"{path}[{i}]", a, VALIDATION_ACTIONS))
        if a in seen:
            errs.append(duplicate(f"{path}[{i}]", a))
        seen.add(a)
    if "Deny" in seen and "Warn" in seen:
        errs.append(invalid(path, GoRaw(go_strings(items).replace("[]string", "[]admissionregistration.ValidationAction", 1)),
                            "must not contain both Deny and Warn (repeating the same validation failure information "
                            "in the API response and headers serves no purpose)"))
    if not seen:
        errs.append(required(path, "at least one validation action is required"))
    return errs


def _validate_binding_head(obj: dict[str, Any]) -> tuple[Errs, dict[str, Any]]:
    """What a validating and a mutating policy binding share (metadata, policyName, paramRef):
    the errors and the spec."""
    spec = d_(obj.get("spec"))
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    policy = s_(spec.get("policyName"))
    if not policy:
        errs.append(required("spec.policyName"))
    else:
        errs += [invalid("spec.policyName", policy, m) for m in name_is_dns_subdomain(policy, False)]
    errs += validate_param_ref(spec.get("paramRef"), "spec.paramRef")
    return errs, spec


def validate_validating_admission_policy_binding(obj: dict[str, Any]) -> Errs:
    errs, spec = _validate_binding_head(obj)
    # kube's path has this spelling ("matchResouces")
    errs += validate_match_resources(spec.get("matchResources"), "spec.matchResouces")
    errs += validate_validation_actions(spec.get("validationActions"), "spec.validationActions")
    return errs


def validate_validating_admission_policy_binding_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + \
        validate_validating_admission_policy_binding(new)


# --------------------------------------------------------------------------- MutatingAdmissionPolicy

MUTATING_OPERATIONS = ("*", "CONNECT", "CREATE", "UPDATE")  # kube's supportedMutatingOperations


def _mutable_operations(mr: Any, path: str) -> Errs:
    """Only CREATE, UPDATE and CONNECT can be mutated (kube's path has no index)."""
    return [not_supported(path, op, MUTATING_OPERATIONS)
            for raw in l_(d_(mr).get("resourceRules")) for op in _strings(d_(raw).get("operations"))
            if op not in MUTATING_OPERATIONS]


def _validate_mutation(raw: Any, names: tuple[str, ...], known: set[str], path: str) -> Errs:
    """kube's ``validateMutation``: the patch type's body is set (the other is not) and its
    expression compiles to what the patch type takes."""
    m = d_(raw)
    pt = m.get("patchType")
    if not pt:
        return [required(f"{path}.patchType")]
    if pt not in mp.PATCH_TYPES:
        return [not_supported(f"{path}.patchType", pt, mp.PATCH_TYPES)]
    body, other = ("applyConfiguration", "jsonPatch") if pt == mp.APPLY_CONFIGURATION else ("jsonPatch", "applyConfiguration")
    errs: Errs = []
    if m.get(body) is None:
        errs.append(required(f"{path}.{body}", f"must be specified when patchType is {pt}"))
    else:
        expr = s_(d_(m[body]).get("expression")).strip()
        p = f"{path}.{body}.expression"
        if not expr:
            errs.append(required(p))
        else:
            _, err = mp.compile_mutation(expr, pt, names)
            err = err or ap.undefined_field(expr, known)
            if err:
                errs.append(invalid(p, expr, err))
    if m.get(other) is not None:
        errs.append(invalid(f"{path}.{other}", GoRaw("{" + other + "}"), f"must not be specified when patchType is {pt}"))
    return errs


def _validate_mutating_policy_spec(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> Errs:
    """kube's ``validateMutatingAdmissionPolicySpec``."""
    path = "spec"
    errs, names, known = _validate_policy_head(spec, old_spec, path, mutating=True)
    mutations = l_(spec.get("mutations"))
    if not mutations:
        errs.append(required(f"{path}.mutations", "mutations must contain at least one item"))
    for i, raw in enumerate(mutations):
        errs += _validate_mutation(raw, names, known, f"{path}.mutations[{i}]")
    rp = spec.get("reinvocationPolicy")
    if not rp:
        errs.append(required(f"{path}.reinvocationPolicy"))
    elif rp not in mp.REINVOCATION_POLICIES:
        errs.append(not_supported(f"{path}.reinvocationPolicy", rp, mp.REINVOCATION_POLICIES))
    return errs


def validate_mutating_admission_policy(obj: dict[str, Any]) -> Errs:
    return (validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
            + _validate_mutating_policy_spec(d_(obj.get("spec")), None))


def validate_mutating_admission_policy_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return (validate_object_meta_update(new.get("metadata"), old.get("metadata"))
            + validate_object_meta(new.get("metadata"), False, name_is_dns_subdomain)
            + _validate_mutating_policy_spec(d_(new.get("spec")), d_(old.get("spec"))))


def validate_mutating_admission_policy_binding(obj: dict[str, Any]) -> Errs:
    """kube's ``validateMutatingAdmissionPolicyBindingSpec``."""
    errs, spec = _validate_binding_head(obj)
    mr = spec.get("matchResources")
    if mr is not None:
        errs += validate_match_resources(mr, "spec.matchResources")
        errs += _mutable_operations(mr, "spec.matchResources.resourceRules.operations")
    return errs


def validate_mutating_admission_policy_binding_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + \
        validate_mutating_admission_policy_binding(new)
