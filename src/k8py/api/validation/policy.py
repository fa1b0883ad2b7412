"""Autoscaling (HPA v1/v2), policy/v1 PodDisruptionBudget, coordination Lease,
RBAC and scheduling PriorityClass."""

from __future__ import annotations

from typing import Any

from k8py.api.errors import forbidden, invalid, not_supported, required
from k8py.api.validation.apps import is_not_more_than_100_percent, validate_positive_int_or_percent
from k8py.api.validation.meta import (
    Errs,
    bad_value,
    child,
    d_,
    i_,
    immutable,
    index,
    is_dns1123_subdomain,
    is_valid_path_segment_name,
    l_,
    name_is_dns_subdomain,
    name_is_path_segment,
    nonnegative,
    s_,
    selector_is_valid,
    semantic,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import PREEMPTION_POLICIES, validate_quantity_value

# ---------------------------------------------------------------------------
# HorizontalPodAutoscaler

METRIC_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
TARGET_TYPES = ("AverageValue", "Utilization", "Value")
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW = 3600


def _scale_target_ref(ref: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    kind, name = s_(ref.get("kind")), s_(ref.get("name"))
    if not kind:
        errs.append(required(child(path, "kind"), ""))
    else:
        errs += [invalid(child(path, "kind"), kind, m) for m in is_valid_path_segment_name(kind)]
    if not name:
        errs.append(required(child(path, "name"), ""))
    else:
        errs += [invalid(child(path, "name"), name, m) for m in is_valid_path_segment_name(name)]
    return errs


def _metric_target(t: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    tt = t.get("type")
    if not tt:
        errs.append(required(child(path, "type"), "must specify a metric target type"))
    elif tt not in TARGET_TYPES:
        errs.append(not_supported(child(path, "type"), tt, TARGET_TYPES))
    au = i_(t.get("averageUtilization"))
    if au is not None and au < 1:
        errs.append(invalid(child(path, "averageUtilization"), au, "must be greater than 0"))
    for f in ("value", "averageValue"):
        if t.get(f) is not None:
            qty, e = validate_quantity_value("", t[f], child(path, f))
            errs += e
            if qty is not None and qty.sign() <= 0 and not e:
                errs.append(invalid(child(path, f), str(qty), "must be positive"))
    if tt == "Utilization" and au is None:
        errs.append(required(child(path, "averageUtilization"), "must set either a target raw value or a target utilization"))
    if tt == "Value" and t.get("value") is None:
        errs.append(required(child(path, "value"), "must set either a target value for metric or a per-pod target"))
    if tt == "AverageValue" and t.get("averageValue") is None:
        errs.append(required(child(path, "averageValue"), "must set either a target value for metric or a per-pod target"))
    return errs


def _metrics(metrics: list[Any], path: str) -> Errs:
    errs: Errs = []
    for i, m in enumerate(metrics):
        m = d_(m)
        mp = index(path, i)
        t = m.get("type")
        if not t:
            errs.append(required(child(mp, "type"), "must specify a metric source type"))
            continue
        if t not in METRIC_TYPES:
            errs.append(not_supported(child(mp, "type"), t, METRIC_TYPES))
            continue
        key = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
               "Pods": "pods", "Resource": "resource"}[t]
        src = m.get(key)
        if not isinstance(src, dict):
            errs.append(required(child(mp, key), f"must populate information for the given metric source (type {t})"))
            continue
        sp = child(mp, key)
        if t in ("Resource", "ContainerResource"):
            if not s_(src.get("name")):
                errs.append(required(child(sp, "name"), "must specify a resource name"))
            if t == "ContainerResource" and not s_(src.get("container")):
                errs.append(required(child(sp, "container"), "must specify a container"))
        else:
            metric = d_(src.get("metric"))
            if not s_(metric.get("name")):
                errs.append(required(child(sp, "metric.name"), "must specify a metric name"))
            if metric.get("selector") is not None:
                errs += validate_label_selector(metric["selector"], child(sp, "metric.selector"))
            if t == "Object":
                errs += _scale_target_ref(d_(src.get("describedObject")), child(sp, "describedObject"))
        errs += _metric_target(d_(src.get("target")), child(sp, "target"))
    return errs


def _scaling_rules(rules: Any, path: str) -> Errs:
    if not isinstance(rules, dict):
        return []
    errs: Errs = []
    sp = rules.get("selectPolicy")
    if sp is not None and sp not in ("Disabled", "Max", "Min"):
        errs.append(not_supported(child(path, "selectPolicy"), sp, ("Disabled", "Max", "Min")))
    sw = i_(rules.get("stabilizationWindowSeconds"))
    if sw is not None:
        if sw < 0:
            errs.append(invalid(child(path, "stabilizationWindowSeconds"), sw, "must be greater than or equal to zero"))
        elif sw > MAX_STABILIZATION_WINDOW:
            errs.append(invalid(child(path, "stabilizationWindowSeconds"), sw,
                                f"must be less than or equal to {MAX_STABILIZATION_WINDOW}"))
    pols = l_(rules.get("policies"))
    if not pols:
        errs.append(required(child(path, "policies"), "must specify at least one Policy"))
    for i, p in enumerate(pols):
        p = d_(p)
        pp = index(child(path, "policies"), i)
        t = p.get("type")
        if t not in ("Pods", "Percent"):
            errs.append(not_supported(child(pp, "type"), s_(t), ("Percent", "Pods")))
        v = i_(p.get("value"))
        if v is None or v <= 0:
            errs.append(invalid(child(pp, "value"), v if v is not None else 0, "must be greater than zero"))
        ps = i_(p.get("periodSeconds"))
        if ps is None or ps <= 0:
            errs.append(invalid(child(pp, "periodSeconds"), ps if ps is not None else 0, "must be greater than zero"))
        elif ps > MAX_PERIOD_SECONDS:
            errs.append(invalid(child(pp, "periodSeconds"), ps, f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


def _hpa_spec(spec: dict[str, Any], v1: bool) -> Errs:
    errs: Errs = []
    mn = i_(spec.get("minReplicas"))
    mx = i_(spec.get("maxReplicas")) or 0
    if mn is not None and mn < 1:
        errs.append(invalid("spec.minReplicas", mn, "must be greater than or equal to 1"))
    if mx < 1:
        errs.append(invalid("spec.maxReplicas", mx, "must be greater than 0"))
    if mn is not None and mx < mn:
        errs.append(invalid("spec.maxReplicas", mx, "must be greater than or equal to `minReplicas`"))
    errs += _scale_target_ref(d_(spec.get("scaleTargetRef")), "spec.scaleTargetRef")
    if v1:
        t = i_(spec.get("targetCPUUtilizationPercentage"))
        if t is not None and t < 1:
            errs.append(invalid("spec.targetCPUUtilizationPercentage", t, "must be greater than 0"))
    else:
        errs += _metrics(l_(spec.get("metrics")), "spec.metrics")
        beh = spec.get("behavior")
        if isinstance(beh, dict):
            errs += _scaling_rules(beh.get("scaleUp"), "spec.behavior.scaleUp")
            errs += _scaling_rules(beh.get("scaleDown"), "spec.behavior.scaleDown")
    return errs


def validate_hpa(obj: dict[str, Any], v1: bool = False) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _hpa_spec(d_(obj.get("spec")), v1)


def validate_hpa_update(new: dict[str, Any], old: dict[str, Any], v1: bool = False) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _hpa_spec(d_(new.get("spec")), v1)


def validate_hpa_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    st = d_(new.get("status"))
    errs += nonnegative("status.currentReplicas", st.get("currentReplicas"))
    errs += nonnegative("status.desiredReplicas", st.get("desiredReplicas"))
    return errs


# ---------------------------------------------------------------------------
# PodDisruptionBudget


def _pdb_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    mn, mu = spec.get("minAvailable"), spec.get("maxUnavailable")
    if mn is not None and mu is not None:
        errs.append(invalid("spec", bad_value(spec), "minAvailable and maxUnavailable cannot be both set"))
    if mn is not None:
        errs += validate_positive_int_or_percent(mn, "spec.minAvailable")
        errs += is_not_more_than_100_percent(mn, "spec.minAvailable")
    if mu is not None:
        errs += validate_positive_int_or_percent(mu, "spec.maxUnavailable")
        errs += is_not_more_than_100_percent(mu, "spec.maxUnavailable")
    errs += validate_label_selector(spec.get("selector"), "spec.selector")
    uep = spec.get("unhealthyPodEvictionPolicy")
    if uep is not None and uep not in ("AlwaysAllow", "IfHealthyBudget"):
        errs.append(not_supported("spec.unhealthyPodEvictionPolicy", uep, ("AlwaysAllow", "IfHealthyBudget")))
    return errs


def validate_pdb(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _pdb_spec(d_(obj.get("spec")))


def validate_pdb_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _pdb_spec(d_(new.get("spec")))


def validate_pdb_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    st = d_(new.get("status"))
    for f in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods", "observedGeneration"):
        errs += nonnegative(child("status", f), st.get(f))
    return errs


# ---------------------------------------------------------------------------
# Lease


def _lease_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    lds = i_(spec.get("leaseDurationSeconds"))
    if lds is not None and lds <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", lds, "must be greater than 0"))
    lt = i_(spec.get("leaseTransitions"))
    if lt is not None and lt < 0:
        errs.append(invalid("spec.leaseTransitions", lt, "must be greater than or equal to 0"))
    for f in ("strategy", "preferredHolder"):
        v = spec.get(f)
        if f == "strategy" and isinstance(v, str) and v not in ("OldestEmulationVersion",):
            errs.append(not_supported("spec.strategy", v, ("OldestEmulationVersion",)))
    return errs


def validate_lease(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _lease_spec(d_(obj.get("spec")))


def validate_lease_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    return validate_object_meta_update(new.get("metadata"), old.get("metadata")) + _lease_spec(d_(new.get("spec")))


# ---------------------------------------------------------------------------
# RBAC

RBAC_GROUP = "rbac.authorization.k8s.io"


def _policy_rule(rule: dict[str, Any], namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    if not l_(rule.get("verbs")):
        errs.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = l_(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            errs.append(invalid(child(path, "nonResourceURLs"), urls, "namespaced rules cannot apply to non-resource URLs"))
        if l_(rule.get("apiGroups")) or l_(rule.get("resources")) or l_(rule.get("resourceNames")):
            errs.append(invalid(child(path, "nonResourceURLs"), urls,
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not l_(rule.get("apiGroups")):
        errs.append(required(child(path, "apiGroups"), "resource rules must supply at least one api group"))
    if not l_(rule.get("resources")):
        errs.append(required(child(path, "resources"), "resource rules must supply at least one resource"))
    return errs


def validate_role(obj: dict[str, Any], namespaced: bool = True) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), namespaced, name_is_path_segment)
    for i, r in enumerate(l_(obj.get("rules"))):
        errs += _policy_rule(d_(r), namespaced, index("rules", i))
    if not namespaced and obj.get("aggregationRule") is not None:
        sels = l_(d_(obj.get("aggregationRule")).get("clusterRoleSelectors"))
        if not sels:
            errs.append(required("aggregationRule.clusterRoleSelectors",
                                 "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        for i, s in enumerate(sels):
            p = index("aggregationRule.clusterRoleSelectors", i)
            errs += validate_label_selector(s, p)
            if not selector_is_valid(s):
                errs.append(invalid(p, bad_value(s), "invalid label selector."))
    return errs


def validate_role_update(new: dict[str, Any], old: dict[str, Any], namespaced: bool = True) -> Errs:
    errs = validate_role(new, namespaced)
    return errs + validate_object_meta_update(new.get("metadata"), old.get("metadata"))


def _subject(s: dict[str, Any], namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    name = s_(s.get("name"))
    if not name:
        errs.append(required(child(path, "name"), ""))
    kind = s.get("kind")
    ag = s_(s.get("apiGroup"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(child(path, "name"), name, m) for m in is_dns1123_subdomain(name)]
        if ag:
            errs.append(not_supported(child(path, "apiGroup"), ag, ("",)))
        if not namespaced and not s_(s.get("namespace")):
            errs.append(required(child(path, "namespace"), ""))
    elif kind in ("User", "Group"):
        if ag != RBAC_GROUP:
            errs.append(not_supported(child(path, "apiGroup"), ag, (RBAC_GROUP,)))
    else:
        errs.append(not_supported(child(path, "kind"), s_(kind), ("ServiceAccount", "User", "Group")))
    return errs


def validate_binding(obj: dict[str, Any], namespaced: bool = True) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), namespaced, name_is_path_segment)
    ref = d_(obj.get("roleRef"))
    if ref.get("apiGroup") != RBAC_GROUP:
        errs.append(not_supported("roleRef.apiGroup", s_(ref.get("apiGroup")), (RBAC_GROUP,)))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind") not in kinds:
        errs.append(not_supported("roleRef.kind", s_(ref.get("kind")), kinds))
    name = s_(ref.get("name"))
    if not name:
        errs.append(required("roleRef.name", ""))
    else:
        errs += [invalid("roleRef.name", name, m) for m in is_valid_path_segment_name(name)]
    for i, s in enumerate(l_(obj.get("subjects"))):
        errs += _subject(d_(s), namespaced, index("subjects", i))
    return errs


def validate_binding_update(new: dict[str, Any], old: dict[str, Any], namespaced: bool = True) -> Errs:
    errs = validate_binding(new, namespaced)
    errs += validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    if semantic(new.get("roleRef")) != semantic(old.get("roleRef")):
        errs.append(invalid("roleRef", bad_value(new.get("roleRef")), "cannot change roleRef"))
    return errs


# ---------------------------------------------------------------------------
# PriorityClass

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}


def validate_priority_class(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), False, name_is_dns_subdomain)
    name = s_(d_(obj.get("metadata")).get("name"))
    value = i_(obj.get("value")) or 0
    if name.startswith("system-"):
        why = None
        if name not in SYSTEM_PRIORITY_CLASSES:
            why = f"{name} is not a known system priority class"
        elif value != SYSTEM_PRIORITY_CLASSES[name]:
            why = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
        elif obj.get("globalDefault") is True:
            why = f"globalDefault of {name} PriorityClass must be false"
        if why:
            errs.append(forbidden("metadata.name", "priority class names with 'system-' prefix are reserved for "
                                                  f"system use only. error: {why}"))
    elif value > HIGHEST_USER_PRIORITY:
        errs.append(forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
    pp = obj.get("preemptionPolicy")
    if pp is not None and pp not in PREEMPTION_POLICIES:
        errs.append(not_supported("preemptionPolicy", pp, PREEMPTION_POLICIES))
    return errs


def validate_priority_class_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    if new.get("value") != old.get("value"):
        errs.append(forbidden("value", "may not be changed in an update."))
    errs += immutable("preemptionPolicy", new.get("preemptionPolicy"), old.get("preemptionPolicy"))
    return errs
