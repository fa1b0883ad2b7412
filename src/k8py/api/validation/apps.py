"""apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision
(``pkg/apis/apps/validation``)."""

from __future__ import annotations

from typing import Any

from k8py.api.errors import forbidden, invalid, not_supported, required
from k8py.api.validation.core import replica_counts
from k8py.api.validation.meta import (
    Errs,
    GoRaw,
    bad_value,
    child,
    d_,
    go_label_selector,
    go_map,
    go_quote,
    i_,
    immutable,
    index,
    is_valid_percent,
    l_,
    name_is_dns_label,
    name_is_dns_subdomain,
    nonnegative,
    s_,
    selector_is_empty,
    selector_is_valid,
    selector_matches,
    semantic,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)
from k8py.api.validation.pod import validate_pod_template_spec

# ---------------------------------------------------------------------------
# shared pieces


def int_or_percent_value(v: Any) -> tuple[int, bool]:
    """(value, is_percent); unparsable percents count as 0 like getIntOrPercentValue."""
    if isinstance(v, str):
        if v.endswith("%"):
            try:
                return int(v[:-1]), True
            except ValueError:
                return 0, True
        return 0, False
    return i_(v) or 0, False


def _ios(v: Any) -> GoRaw:
    """An IntOrString prints through its String() method: 25% / 1, unquoted."""
    return GoRaw(str(v))


def validate_positive_int_or_percent(v: Any, path: str) -> Errs:
    if isinstance(v, str):
        return [invalid(path, _ios(v), m) for m in is_valid_percent(v)]
    iv = i_(v)
    if iv is not None:
        return nonnegative(path, iv)
    if v is None:
        return []
    return [invalid(path, bad_value(v), "must be an integer or percentage (e.g '5%')")]


def is_not_more_than_100_percent(v: Any, path: str) -> Errs:
    value, pct = int_or_percent_value(v)
    if pct and value > 100:
        return [invalid(path, _ios(v), "must not be greater than 100%")]
    return []


def _selector_and_template(spec: dict[str, Any], kind_word: str, path: str = "spec") -> tuple[Errs, bool]:
    """Selector checks shared by Deployment/ReplicaSet/StatefulSet; returns (errors, selector_ok)."""
    errs: Errs = []
    sel = spec.get("selector")
    if sel is None:
        errs.append(required(child(path, "selector"), ""))
    else:
        errs += validate_label_selector(sel, child(path, "selector"))
        if selector_is_empty(sel):
            errs.append(invalid(child(path, "selector"), go_label_selector(sel), f"empty selector is invalid for {kind_word}"))
    return errs, selector_is_valid(sel)


def _template_matches(spec: dict[str, Any], path: str) -> Errs:
    """`selector` does not match template `labels` (a nil selector matches nothing)."""
    sel = spec.get("selector")
    if sel is not None and selector_is_empty(sel):
        return []
    labels = d_(d_(d_(spec.get("template")).get("metadata"))).get("labels")
    if not selector_matches(sel, labels):
        return [invalid(child(path, "template.metadata.labels"), go_map(labels), "`selector` does not match template `labels`")]
    return []


def _restart_always(spec: dict[str, Any], path: str, kind: str, ads_forbidden: bool) -> Errs:
    errs: Errs = []
    tspec = d_(d_(spec.get("template")).get("spec"))
    rp = tspec.get("restartPolicy")
    if rp != "Always":
        errs.append(not_supported(child(path, "template.spec.restartPolicy"), rp if rp is not None else "", ("Always",)))
    ads = tspec.get("activeDeadlineSeconds")
    if ads is not None:
        p = child(path, "template.spec.activeDeadlineSeconds")
        msg = f"activeDeadlineSeconds in {kind} is not Supported"
        errs.append(forbidden(p, msg) if ads_forbidden else invalid(p, ads, msg))
    return errs


def _status_nonneg(status: dict[str, Any], fields: tuple[str, ...]) -> Errs:
    errs: Errs = []
    for f in fields:
        errs += nonnegative(child("status", f), status.get(f))
    return errs


def _selector_immutable(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    if semantic(ns.get("selector")) != semantic(os_.get("selector")):
        return [invalid("spec.selector", go_label_selector(ns.get("selector")), "field is immutable")]
    return []


# ---------------------------------------------------------------------------
# ReplicaSet


def _replica_set_spec(spec: dict[str, Any]) -> Errs:
    errs = nonnegative("spec.replicas", spec.get("replicas"))
    errs += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    sel_errs, ok = _selector_and_template(spec, "deployment")
    errs += sel_errs
    if not ok:
        errs.append(invalid("spec.selector", go_label_selector(spec.get("selector")), "invalid label selector"))
    else:
        errs += _template_matches(spec, "spec")
        errs += validate_pod_template_spec(spec.get("template"), "spec.template")
        errs += _restart_always(spec, "spec", "ReplicaSet", ads_forbidden=False)
    return errs


def validate_replica_set(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _replica_set_spec(d_(obj.get("spec")))


def validate_replica_set_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _replica_set_spec(d_(new.get("spec")))
    errs += _selector_immutable(new, old)
    return errs


def validate_replica_set_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    st = d_(new.get("status"))
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _status_nonneg(st, ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                                "terminatingReplicas", "observedGeneration"))
    errs += replica_counts(st)
    return errs


# ---------------------------------------------------------------------------
# Deployment


def _deployment_strategy(strategy: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    t = strategy.get("type")
    ru = strategy.get("rollingUpdate")
    if t == "Recreate":
        if ru is not None:
            errs.append(forbidden(child(path, "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
    elif t == "RollingUpdate":
        if not isinstance(ru, dict):
            errs.append(required(child(path, "rollingUpdate"), "this should be defaulted and never be nil"))
        else:
            rp = child(path, "rollingUpdate")
            mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
            errs += validate_positive_int_or_percent(mu, child(rp, "maxUnavailable"))
            errs += validate_positive_int_or_percent(ms, child(rp, "maxSurge"))
            if int_or_percent_value(mu)[0] == 0 and int_or_percent_value(ms)[0] == 0:
                errs.append(invalid(child(rp, "maxUnavailable"), _ios(mu if mu is not None else 0),
                                    "may not be 0 when `maxSurge` is 0"))
            errs += is_not_more_than_100_percent(mu, child(rp, "maxUnavailable"))
    else:
        errs.append(not_supported(path, GoRaw(
            f"apps.DeploymentStrategy{{Type:{go_quote(s_(t))}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}"),
            ("Recreate", "RollingUpdate")))
    return errs


def _deployment_spec(spec: dict[str, Any]) -> Errs:
    errs = nonnegative("spec.replicas", spec.get("replicas"))
    sel_errs, ok = _selector_and_template(spec, "deployment")
    errs += sel_errs
    if not ok:
        errs.append(invalid("spec.selector", go_label_selector(spec.get("selector")), "invalid label selector"))
    else:
        errs += _template_matches(spec, "spec")
        errs += validate_pod_template_spec(spec.get("template"), "spec.template")
        errs += _restart_always(spec, "spec", "ReplicaSet", ads_forbidden=False)
    errs += _deployment_strategy(d_(spec.get("strategy")), "spec.strategy")
    errs += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errs += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    pds = i_(spec.get("progressDeadlineSeconds"))
    if pds is not None:
        errs += nonnegative("spec.progressDeadlineSeconds", pds)
        if pds <= (i_(spec.get("minReadySeconds")) or 0):
            errs.append(invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    return errs


def validate_deployment(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _deployment_spec(d_(obj.get("spec")))


def validate_deployment_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _deployment_spec(d_(new.get("spec")))
    errs += _selector_immutable(new, old)
    return errs


def validate_deployment_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    st = d_(new.get("status"))
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _status_nonneg(st, ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                "availableReplicas", "unavailableReplicas", "terminatingReplicas", "collisionCount"))
    replicas = i_(st.get("replicas")) or 0
    msg = "cannot be greater than status.replicas"
    for f in ("updatedReplicas", "readyReplicas", "availableReplicas"):
        v = i_(st.get(f)) or 0
        if v > replicas:
            errs.append(invalid(child("status", f), v, msg))
    if (i_(st.get("availableReplicas")) or 0) > (i_(st.get("readyReplicas")) or 0):
        errs.append(invalid("status.availableReplicas", i_(st.get("availableReplicas")),
                            "cannot be greater than readyReplicas"))
    ncc, occ = i_(st.get("collisionCount")), i_(d_(old.get("status")).get("collisionCount"))
    if occ is not None and (ncc is None or ncc < occ):
        errs.append(invalid("status.collisionCount", ncc if ncc is not None else "null", "cannot be decremented"))
    return errs


# ---------------------------------------------------------------------------
# StatefulSet


def _statefulset_spec(spec: dict[str, Any]) -> Errs:
    from k8py.api.validation.storage import validate_pvc_spec

    errs: Errs = []
    pmp = spec.get("podManagementPolicy")
    if not pmp:
        errs.append(required("spec.podManagementPolicy", ""))
    elif pmp not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"))
    us = d_(spec.get("updateStrategy"))
    t = us.get("type")
    ru = us.get("rollingUpdate")
    if not t:
        errs.append(required("spec.updateStrategy", ""))
    elif t == "OnDelete":
        if ru is not None:
            errs.append(invalid("spec.updateStrategy.rollingUpdate", bad_value(ru),
                                "only allowed for updateStrategy 'RollingUpdate'"))
    elif t == "RollingUpdate":
        if isinstance(ru, dict):
            rp = "spec.updateStrategy.rollingUpdate"
            errs += nonnegative(child(rp, "partition"), ru.get("partition"))
            mu = ru.get("maxUnavailable")
            if mu is not None:
                errs += validate_positive_int_or_percent(mu, child(rp, "maxUnavailable"))
                if int_or_percent_value(mu)[0] == 0:
                    errs.append(invalid(child(rp, "maxUnavailable"), _ios(mu), "cannot be 0"))
                errs += is_not_more_than_100_percent(mu, child(rp, "maxUnavailable"))
    else:
        errs.append(invalid("spec.updateStrategy", bad_value(us), "must be 'RollingUpdate' or 'OnDelete'"))
    pol = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(pol, dict):
        for f in ("whenDeleted", "whenScaled"):
            v = pol.get(f)
            if v not in ("Retain", "Delete"):
                errs.append(not_supported(child("spec.persistentVolumeClaimRetentionPolicy", f),
                                          v if v is not None else "", ("Retain", "Delete")))
    errs += nonnegative("spec.replicas", spec.get("replicas"))
    errs += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        errs += nonnegative("spec.ordinals.start", ordinals.get("start"))
    sel_errs, ok = _selector_and_template(spec, "statefulset")
    errs += sel_errs
    claim_names = []
    for i, tmpl in enumerate(l_(spec.get("volumeClaimTemplates"))):
        tmpl = d_(tmpl)
        name = s_(d_(tmpl.get("metadata")).get("name"))
        p = index("spec.volumeClaimTemplates", i)
        if not name:
            errs.append(required(child(p, "metadata.name"), ""))
        else:
            claim_names.append(name)
        errs += validate_pvc_spec(d_(tmpl.get("spec")), child(p, "spec"))
    if not ok:
        errs.append(invalid("spec.selector", go_label_selector(spec.get("selector")), ""))
    else:
        errs += _template_matches(spec, "spec")
        errs += validate_pod_template_spec(spec.get("template"), "spec.template", tuple(claim_names))
    errs += _restart_always(spec, "spec", "StatefulSet", ads_forbidden=True)
    errs += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


def validate_stateful_set(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_label)
    return errs + _statefulset_spec(d_(obj.get("spec")))


STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "minReadySeconds", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy")


def validate_stateful_set_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    errs += _statefulset_spec(ns)
    a = {k: v for k, v in ns.items() if k not in STS_MUTABLE}
    b = {k: v for k, v in os_.items() if k not in STS_MUTABLE}
    if semantic(a) != semantic(b):
        errs.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                      "'template', 'updateStrategy', 'revisionHistoryLimit', "
                                      "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
    return errs


def validate_stateful_set_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    st = d_(new.get("status"))
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _status_nonneg(st, ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                                "availableReplicas", "observedGeneration", "collisionCount"))
    replicas = i_(st.get("replicas")) or 0
    msg = "cannot be greater than status.replicas"
    for f in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
        v = i_(st.get(f)) or 0
        if v > replicas:
            errs.append(invalid(child("status", f), v, msg))
    if (i_(st.get("availableReplicas")) or 0) > (i_(st.get("readyReplicas")) or 0):
        errs.append(invalid("status.availableReplicas", i_(st.get("availableReplicas")),
                            "cannot be greater than status.readyReplicas"))
    return errs


# ---------------------------------------------------------------------------
# DaemonSet


def _daemonset_spec(spec: dict[str, Any]) -> Errs:
    errs: Errs = []
    sel = spec.get("selector")
    if sel is None:
        errs.append(required("spec.selector", ""))
    errs += validate_label_selector(sel, "spec.selector")
    if selector_is_valid(sel):
        labels = d_(d_(d_(spec.get("template")).get("metadata"))).get("labels")
        if not (sel is not None and selector_is_empty(sel)) and not selector_matches(sel, labels):
            errs.append(invalid("spec.template.metadata.labels", go_map(labels),
                                "`selector` does not match template `labels`"))
    if sel is not None and selector_is_empty(sel):
        errs.append(invalid("spec.selector", go_label_selector(sel), "empty selector is invalid for daemonset"))
    errs += validate_pod_template_spec(spec.get("template"), "spec.template")
    errs += _restart_always(spec, "spec", "DaemonSet", ads_forbidden=False)
    errs += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errs += nonnegative("spec.templateGeneration", spec.get("templateGeneration"))
    us = d_(spec.get("updateStrategy"))
    t = us.get("type")
    if t == "RollingUpdate":
        ru = us.get("rollingUpdate")
        rp = "spec.updateStrategy.rollingUpdate"
        if not isinstance(ru, dict):
            errs.append(required(rp, ""))
        else:
            mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
            errs += validate_positive_int_or_percent(mu, child(rp, "maxUnavailable"))
            errs += validate_positive_int_or_percent(ms, child(rp, "maxSurge"))
            errs += is_not_more_than_100_percent(mu, child(rp, "maxUnavailable"))
            errs += is_not_more_than_100_percent(ms, child(rp, "maxSurge"))
            has_u = int_or_percent_value(mu)[0] != 0
            has_s = int_or_percent_value(ms)[0] != 0
            if has_u and has_s:
                errs.append(invalid(child(rp, "maxSurge"), _ios(ms), "may not be set when maxUnavailable is non-zero"))
            elif not has_u and not has_s:
                errs.append(required(child(rp, "maxUnavailable"), "cannot be 0 when maxSurge is 0"))
    elif t != "OnDelete":
        errs.append(not_supported("spec.updateStrategy", GoRaw(
            f"apps.DaemonSetUpdateStrategy{{Type:{go_quote(s_(t))}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}"),
            ("RollingUpdate", "OnDelete")))
    errs += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


def validate_daemon_set(obj: dict[str, Any]) -> Errs:
    return validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain) + _daemonset_spec(d_(obj.get("spec")))


def validate_daemon_set_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    ns, os_ = d_(new.get("spec")), d_(old.get("spec"))
    errs += _daemonset_spec(ns)
    ntg, otg = i_(ns.get("templateGeneration")), i_(os_.get("templateGeneration"))
    if ntg is not None and otg is not None and ntg < otg:
        errs.append(invalid("spec.templateGeneration", ntg, "must not be decremented"))
    errs += _selector_immutable(new, old)
    return errs


def validate_daemon_set_status(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    st = d_(new.get("status"))
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += _status_nonneg(st, ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                                "numberReady", "observedGeneration", "updatedNumberScheduled", "numberAvailable",
                                "numberUnavailable", "collisionCount"))
    return errs


# ---------------------------------------------------------------------------
# ControllerRevision


def validate_controller_revision(obj: dict[str, Any]) -> Errs:
    errs = validate_object_meta(obj.get("metadata"), True, name_is_dns_subdomain)
    if obj.get("data") is None:
        errs.append(required("data", "data is mandatory"))
    errs += nonnegative("revision", obj.get("revision"))
    return errs


def validate_controller_revision_update(new: dict[str, Any], old: dict[str, Any]) -> Errs:
    errs = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    errs += immutable("data", new.get("data"), old.get("data"))
    if new.get("data") is None:
        errs.append(required("data", "data is mandatory"))
    errs += nonnegative("revision", new.get("revision"))
    return errs
